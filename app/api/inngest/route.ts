import { serve } from "inngest/next";
import { inngest } from "@/inngest/client";
import { functions } from "@/inngest/index";
import { inngestServeOrigin, requireInBandSync } from "@/lib/http/inngest-serve";
import { methodNotAllowed } from "@/lib/http/methods";

// Vercel: a serve request may run this long; the client's checkpointing.maxRuntime stays below it.
export const maxDuration = 300;

// The origin is pinned and, in production, only signed in-band syncs are served (lib/http/inngest-serve.ts).
const handlers = serve({ client: inngest, functions, serveOrigin: inngestServeOrigin() });
export const { GET, POST } = handlers;
export const PUT = requireInBandSync(handlers.PUT);

export const { PATCH, DELETE } = methodNotAllowed(["GET", "POST", "PUT"]);
