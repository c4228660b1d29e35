// Retention (lib/retention.ts, docs/retention.md) on the real database through PostgREST, as the outbox-sweeper calls
// it: bookkeeping past its window goes, in bounded batches; everything inside the window, everything not yet done
// (unsent outbox rows, deliveries still pending), and the user's results stay.
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { pruneBookkeeping, type RetentionWindows } from "../../../lib/retention";
import { createTestSupabase, type TestSupabase } from "../../support/supabase";
import { sql } from "./sql";

let sb: TestSupabase;
beforeAll(async () => {
  sb = await createTestSupabase();
});
afterAll(async () => {
  await sb?.stop();
});

const DAY = 86_400;
const NOW = new Date();
const daysAgo = (d: number) => new Date(NOW.getTime() - d * DAY * 1000).toISOString();
const windows = (batch: number, maxBatches = 100): RetentionWindows => ({
  keepSeconds: { outbox: 7 * DAY, webhook_attempts: 30 * DAY, notifications: 30 * DAY, web_page_cache: 7 * DAY },
  batch,
  maxBatches,
});
const count = async (text: string, params: unknown[] = []) => Number((await sql<{ n: string }>(sb.databaseUrl, text, params))[0]!.n);

describe("pruneBookkeeping", () => {
  test("deletes what is past each window, keeps what is inside it or not done, and drains a backlog batch by batch", async () => {
    const tag = randomUUID().slice(0, 8);
    // Outbox: 25 sent 8–9 days ago (past 7), 3 sent 6 days ago (inside), 2 never sent 30 days old (not done).
    await sql(
      sb.databaseUrl,
      `insert into public.outbox (event_id, name, data, created_at, available_at, sent_at)
       select $1 || '-old-' || g, 'task/run.requested', '{}'::jsonb, $2::timestamptz, $2::timestamptz, $2::timestamptz + make_interval(secs => g)
         from generate_series(1, 25) g
       union all
       select $1 || '-recent-' || g, 'task/run.requested', '{}'::jsonb, $3::timestamptz, $3::timestamptz, $3::timestamptz from generate_series(1, 3) g
       union all
       select $1 || '-unsent-' || g, 'task/run.requested', '{}'::jsonb, $4::timestamptz, $4::timestamptz, null from generate_series(1, 2) g`,
      [tag, daysAgo(9), daysAgo(6), daysAgo(30)],
    );
    // A task (a result: never pruned) with a finished old delivery (3 attempts), a finished recent one (1) and a
    // pending old one (2: not done, kept).
    const [task] = await sql<{ id: string }>(
      sb.databaseUrl,
      `insert into public.tasks (agent_id, prompt, status, created_at) values ('research', 'retention', 'completed', $1) returning id`,
      [daysAgo(60)],
    );
    await sql(
      sb.databaseUrl,
      `with d as (
         insert into public.webhook_deliveries (message_id, task_id, kind, event_type, url, payload, status, attempts, created_at, finished_at)
         values ($1 || '-old', $2::uuid, 'callback', 'task.completed', 'https://example.com/h', '{}', 'delivered', 3, $3::timestamptz, $3::timestamptz),
                ($1 || '-recent', $2::uuid, 'callback', 'task.completed', 'https://example.com/h', '{}', 'failed', 1, $4::timestamptz, $4::timestamptz),
                ($1 || '-pending', $2::uuid, 'callback', 'task.completed', 'https://example.com/h', '{}', 'pending', 2, $3::timestamptz, null)
         returning id, attempts)
       insert into public.webhook_delivery_attempts (delivery_id, attempt, outcome, at)
       select d.id, a, 'retry', $3::timestamptz from d, generate_series(1, d.attempts) a`,
      [tag, task!.id, daysAgo(40), daysAgo(10)],
    );
    // Notifications: 4 old (two of them with a delivery row), 1 recent.
    await sql(
      sb.databaseUrl,
      `with n as (
         insert into public.notifications (kind, dedupe_key, title, body, created_at, delivered_at)
         select 'budget_reached', $1 || '-old-' || g, 't', 'b', $2::timestamptz, $2::timestamptz from generate_series(1, 4) g
         union all select 'budget_reached', $1 || '-recent', 't', 'b', $3::timestamptz, $3::timestamptz
         returning id, dedupe_key)
       insert into public.notification_deliveries (notification_id, channel, status, attempts, sent_at)
       select n.id, 'slack', 'sent', 1, $2::timestamptz from n where n.dedupe_key in ($1 || '-old-1', $1 || '-old-2', $1 || '-recent')`,
      [tag, daysAgo(31), daysAgo(2)],
    );
    await sql(
      sb.databaseUrl,
      `insert into public.web_page_cache (url, final_url, status, text, fetched_at)
       values ('https://old.example/' || $1, 'https://old.example/', 200, 'x', $2::timestamptz), ('https://new.example/' || $1, 'https://new.example/', 200, 'x', $3::timestamptz)`,
      [tag, daysAgo(8), daysAgo(1)],
    );

    // Batches of 10 with at most 2 per call: the 25 old outbox rows need two sweeps.
    const first = await pruneBookkeeping(sb.admin, windows(10, 2), NOW);
    expect(first.outbox).toBe(20);
    const second = await pruneBookkeeping(sb.admin, windows(10, 2), NOW);
    expect(second.outbox).toBe(5);
    expect(first.webhook_attempts + second.webhook_attempts).toBe(3);
    expect(first.notifications + second.notifications).toBe(4);
    expect(first.web_page_cache + second.web_page_cache).toBe(1);
    const third = await pruneBookkeeping(sb.admin, windows(10, 2), NOW);
    expect(third).toEqual({ outbox: 0, webhook_attempts: 0, notifications: 0, web_page_cache: 0 });

    expect(await count(`select count(*) as n from public.outbox where event_id like $1 || '-%'`, [tag])).toBe(5);
    expect(await count(`select count(*) as n from public.outbox where event_id like $1 || '-unsent-%'`, [tag])).toBe(2);
    expect(await count(`select count(*) as n from public.outbox where event_id like $1 || '-recent-%'`, [tag])).toBe(3);
    // The deliveries themselves stay (the task page lists them); the old finished one lost its attempt log only.
    expect(
      (
        await sql<{ message_id: string; n: string }>(
          sb.databaseUrl,
          `select d.message_id, count(a.*) as n from public.webhook_deliveries d left join public.webhook_delivery_attempts a on a.delivery_id = d.id
            where d.message_id like $1 || '-%' group by d.message_id order by d.message_id`,
          [tag],
        )
      ).map((r) => [r.message_id.slice(tag.length + 1), Number(r.n)]),
    ).toEqual([
      ["old", 0],
      ["pending", 2],
      ["recent", 1],
    ]);
    expect(await count(`select count(*) as n from public.notifications where dedupe_key like $1 || '-%'`, [tag])).toBe(1);
    expect(await count(`select count(*) as n from public.notification_deliveries d join public.notifications n on n.id = d.notification_id where n.dedupe_key like $1 || '-%'`, [tag])).toBe(1);
    expect(await count(`select count(*) as n from public.web_page_cache where url like '%' || $1`, [tag])).toBe(1);
    expect(await count(`select count(*) as n from public.tasks where id = $1`, [task!.id])).toBe(1);
  });

  test("an unknown kind is refused, not ignored", async () => {
    const { error } = await sb.admin.rpc("prune_bookkeeping", { p_kind: "tasks", p_keep_seconds: 0, p_limit: 10 });
    expect(error?.code).toBe("22023");
  });
});
