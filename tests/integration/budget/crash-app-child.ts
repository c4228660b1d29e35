// The app for the crash-sweep test, in its own process so the test can SIGKILL it mid-call: every Inngest function
// of the app served by the real SDK on CRASH_APP_PORT (the environment points it at the test's parts). Prints READY.
import { createServer } from "node:http";

const { inngest } = await import("../../../inngest/client");
const { functions } = await import("../../../inngest/index");
const { serve } = await import("inngest/node");
const server = createServer(serve({ client: inngest, functions }));
server.keepAliveTimeout = 30_000;
await new Promise<void>((r) => server.listen(Number(process.env.CRASH_APP_PORT), "127.0.0.1", () => r()));
process.stdout.write("READY\n");
