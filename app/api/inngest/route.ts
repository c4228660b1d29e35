import { serve } from "inngest/next";
import { inngest } from "@/inngest/client";
import { functions } from "@/inngest/index";

// Vercel: a serve request may run this long; the client's checkpointing.maxRuntime stays below it.
export const maxDuration = 300;

export const { GET, POST, PUT } = serve({ client: inngest, functions });
