// Fixture rows for the pipeline tables (pipelines, pipeline_stages), made through the pipeline functions
// themselves: one pipeline whose research stage completed on the foundation's fixture task.
import { sql } from "../sql";

const TASK = "00000000-0000-4000-8000-00000000f001";

export async function insertFixtures(url: string): Promise<void> {
  const [p] = await sql<{ pipeline_id: string }>(
    url,
    `select pipeline_id from public.create_pipeline('rls fixture topic', 'research', 'rlsfixture01', 'rls-fixture', repeat('b', 64))`,
  );
  const id = p!.pipeline_id;
  await sql(url, `select * from public.start_pipeline_stage($1, 'research', 'run-rls-fixture')`, [id]);
  await sql(url, `select public.set_pipeline_stage_task($1, 'research', 'run-rls-fixture', $2)`, [id, TASK]);
  await sql(url, `select public.complete_pipeline_stage($1, 'research', 'run-rls-fixture', '{"text":"rls fixture findings"}'::jsonb)`, [id]);
}
