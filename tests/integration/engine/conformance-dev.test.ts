// Every op and option through the real SDK serve() handler, with the app in dev mode (INNGEST_DEV=<engine>).
import { conformanceSuite } from "../../support/engine-conformance";

conformanceSuite("dev");
