// Fixture rows for the foundation tables (api_keys, tasks, task_steps).
import { createHash } from "node:crypto";
import { sql } from "../sql";

export async function insertFixtures(url: string): Promise<void> {
  await sql(url, "insert into public.api_keys (id, name, key_hash) values ('rlsfixture01', 'rls fixture', $1)", [
    createHash("sha256").update("ns_rlsfixture01_secret").digest("hex"),
  ]);
  const [task] = await sql<{ id: string }>(
    url,
    `insert into public.tasks (id, agent_id, prompt, api_key_id)
     values ('00000000-0000-4000-8000-00000000f001', 'research', 'rls fixture', 'rlsfixture01') returning id`,
  );
  await sql(url, `insert into public.task_steps (task_id, step_id, kind, status) values ($1, 'turn-1', 'model', 'completed')`, [
    task!.id,
  ]);
}
