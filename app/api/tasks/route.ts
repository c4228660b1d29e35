// POST /api/tasks queues a task (202) — it never runs an agent. GET /api/tasks lists tasks.
import { db } from "@/lib/db/server";
import { relayAfterResponse } from "@/inngest/outbox-relay";
import { checkedWithKey, presentedApiKey, requireApiKey } from "@/lib/http/auth";
import { readJsonBody } from "@/lib/http/body";
import { assertListCursor } from "@/lib/http/cursor";
import { withErrors } from "@/lib/http/errors";
import { methodNotAllowed } from "@/lib/http/methods";
import { parseOr400 } from "@/lib/http/validation";
import { CreateTaskBody, IdempotencyKey, ListTasksQuery } from "@/lib/tasks/schema";
import { listTasks } from "@/lib/tasks/service";
import { publicOrigin } from "@/lib/http/origin";
import { submitTask } from "@/lib/tasks/submit";

export const dynamic = "force-dynamic";

// One database round trip: submit_task verifies the key, records the task and its start event together; the
// event is relayed after the response. A syntactically valid but unknown/revoked key is a 401 from that call, or
// from checkedWithKey when the request is refused before it (415, 413, 400).
export const POST = withErrors(async (req: Request) => {
  const apiKey = presentedApiKey(req);
  // A refused request is checked against the key first (a bad key is a 401 whatever the body); a valid one is not.
  const { idempotencyKey, body } = await checkedWithKey(req, async () => {
    const rawKey = req.headers.get("idempotency-key");
    return {
      idempotencyKey: rawKey === null ? null : parseOr400(IdempotencyKey, rawKey, "Idempotency-Key header"),
      body: parseOr400(CreateTaskBody, await readJsonBody(req)),
    };
  });
  const task = await submitTask(db(), body, apiKey, idempotencyKey, { relay: "none" });
  if (task.outcome === "created") relayAfterResponse();
  const statusUrl = `/api/tasks/${task.taskId}`;
  return Response.json(
    { task_id: task.taskId, status: task.status, status_url: statusUrl },
    {
      status: 202,
      headers: {
        Location: new URL(statusUrl, publicOrigin(req)).toString(),
        ...(task.outcome === "replayed" ? { "Idempotent-Replayed": "true" } : {}),
      },
    },
  );
});

export const GET = withErrors(async (req: Request) => {
  await requireApiKey(req);
  const params = Object.fromEntries(new URL(req.url).searchParams);
  const q = parseOr400(ListTasksQuery, params, "query");
  if (q.cursor) assertListCursor(q.cursor);
  return Response.json(await listTasks(db(), q));
});

export const { PUT, PATCH, DELETE } = methodNotAllowed(["GET", "POST"]);
