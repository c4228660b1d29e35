import { serve } from "inngest/next";
import { inngest } from "@/inngest/client";
import { functions } from "@/inngest/index";
import { inngestServeOrigin, refuseWebPagesInDevMode, requireInBandSync } from "@/lib/http/inngest-serve";
import { methodNotAllowed } from "@/lib/http/methods";

// Vercel: a serve request may run this long; the client's checkpointing.maxRuntime stays below it.
export const maxDuration = 300;

// The origin is pinned; in production only signed in-band syncs are served; in dev mode (unsigned) nothing a web page
// sends reaches the SDK (lib/http/inngest-serve.ts).
const handlers = serve({ client: inngest, functions, serveOrigin: inngestServeOrigin() });
export const GET = refuseWebPagesInDevMode(handlers.GET);
export const POST = refuseWebPagesInDevMode(handlers.POST);
export const PUT = refuseWebPagesInDevMode(requireInBandSync(handlers.PUT));

export const { PATCH, DELETE } = methodNotAllowed(["GET", "POST", "PUT"]);
