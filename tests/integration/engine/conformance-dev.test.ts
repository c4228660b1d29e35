// Every op and option through the real SDK serve() handler, with the app in dev mode (INNGEST_DEV=<engine>).
import { conformanceSuite } from "../../support/engine-conformance";

// Both execution flows: checkpointing (the default, as Inngest Cloud with SDK 4.x) and classic.
for (const execution of ["checkpoint", "classic"] as const) conformanceSuite("dev", execution);
