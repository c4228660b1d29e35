// The same suite in signed cloud mode (INNGEST_BASE_URL + INNGEST_SIGNING_KEY + INNGEST_EVENT_KEY).
import { conformanceSuite } from "../../support/engine-conformance";

// Both execution flows: checkpointing (the default, as Inngest Cloud with SDK 4.x) and classic.
for (const execution of ["checkpoint", "classic"] as const) conformanceSuite("signed", execution);
