// The same suite in signed cloud mode (INNGEST_BASE_URL + INNGEST_SIGNING_KEY + INNGEST_EVENT_KEY).
import { conformanceSuite } from "../../support/engine-conformance";

conformanceSuite("signed");
