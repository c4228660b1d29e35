// Seeds months of use straight into Postgres for bench/scale.ts: `tasks` tasks over the last `days` days across
// `agents` agents, in the shapes the functions produce — each task's step timeline and ledger rows (settled
// reservations, the per-agent-per-day windows), the approvals content drafts produce (most decided, the newest
// pending), dead letters for the failed ones, pipelines with their three stages, schedules and their firings, the
// outbox row each submission wrote, callback deliveries and their attempts, console sessions and login-limit rows,
// notifications and their deliveries, side effects and artifacts, and the local engine's own tables
// (inngest_local.events/runs/memos/history) as finished runs leave them. One generate_series per table, one
// transaction, then ANALYZE (what autovacuum does within a minute of a bulk load). Deterministic apart from ids.
import type pg from "pg";
import { Store } from "../../local/engine/store";
import { SEED_RESERVATIONS_SQL, SEED_WINDOWS_SQL } from "./console-seed";

export interface ScaleSeedOptions {
  tasks: number;
  days: number;
  agents: number;
  /** Steps of the one task with a long timeline (the task page measured). */
  bigTaskSteps: number;
}

export interface ScaleSeed {
  counts: Record<string, number>;
  /** The 20 agents' ids; `agentIds[0]` is 'research'. */
  agentIds: string[];
  apiKeyId: string;
  /** A finished task with `bigTaskSteps` steps. */
  bigTaskId: string;
  /** A pending approval of a task waiting for it. */
  pendingApprovalId: string;
  /** A pending dead letter. */
  deadLetterId: string;
  seconds: number;
}

const TABLES = [
  "tasks",
  "task_steps",
  "budget_reservations",
  "budget_windows",
  "approvals",
  "dead_letters",
  "pipelines",
  "pipeline_stages",
  "schedules",
  "schedule_firings",
  "outbox",
  "webhook_deliveries",
  "webhook_delivery_attempts",
  "console_sessions",
  "console_login_limits",
  "notifications",
  "notification_deliveries",
  "side_effects",
  "artifacts",
  "agent_changes",
] as const;
const ENGINE_TABLES = ["events", "runs", "memos", "history"] as const;

export async function seedScale(sql: pg.Client, databaseUrl: string, o: ScaleSeedOptions): Promise<ScaleSeed> {
  const t0 = Date.now();
  // The engine's schema is created by the engine itself (local/engine/store.ts): the same call, no engine started.
  const store = new Store(databaseUrl);
  try {
    await store.migrate();
  } finally {
    await store.pool.end();
  }
  const spacing = (o.days * 86400) / o.tasks;
  const q = (text: string, values?: unknown[]) => sql.query(text, values);
  await q("begin");
  try {
    await q(`set local synchronous_commit = off`);
    // Agents: the three of supabase/seed.sql plus agent-04 … agent-NN shaped like 'research'.
    await q(
      `insert into public.agents (id, display_name, description, model, system_prompt, max_turns, max_tokens,
                                  wall_clock_seconds, concurrency, daily_budget_micros, tools, requires_approval)
       select format('agent-%s', lpad(g::text, 2, '0')), format('Agent %s', g), '', a.model, a.system_prompt,
              a.max_turns, a.max_tokens, a.wall_clock_seconds, a.concurrency, a.daily_budget_micros * 5, a.tools, false
         from generate_series(4, $1::int) g, public.agents a where a.id = 'research'
       on conflict (id) do nothing`,
      [o.agents],
    );
    const agentIds = (
      await q(`select array_agg(id order by (id <> 'research'), (id <> 'content'), (id <> 'outreach'), id) as ids from public.agents`)
    ).rows[0].ids as string[];
    const apiKeyId = "benchscale01";
    await q(
      `insert into public.api_keys (id, name, key_hash) values ($1, 'bench:scale', encode(extensions.digest('bench', 'sha256'), 'hex'))
       on conflict (id) do nothing`,
      [apiKeyId],
    );

    // g = 1 is the newest task. h: a cheap deterministic hash of g for statuses and amounts.
    await q(
      `create temporary table seed on commit drop as
       select g, (g * 2654435761::bigint) % 1000 as h,
              ($2::text[])[1 + (g % array_length($2::text[], 1))] as agent_id,
              now() - make_interval(secs => g * $3::float8) as created_at,
              1 + (g % 4) as turns, gen_random_uuid() as id, null::public.task_status as status
         from generate_series(1, $1::int) g`,
      [o.tasks, agentIds, spacing],
    );
    // The newest 200 hold what is in flight now; the rest finished, mostly completed.
    await q(
      `update seed set status = case
         when g <= 200 and agent_id = 'content' then 'waiting_approval'
         when g <= 200 and g % 10 < 2 then 'running'
         when g <= 200 and g % 10 < 4 then 'queued'
         when g <= 200 and g % 10 = 4 then 'waiting_budget'
         when h < 800 then 'completed'
         when h < 880 then 'failed'
         when h < 930 then 'stopped'
         when h < 970 and agent_id = 'content' then 'rejected'
         when h < 970 then 'completed'
         else 'cancelled' end::public.task_status`,
    );
    await q(`create index on seed (g)`);
    await q(`analyze seed`);
    await q(
      `insert into public.tasks (id, agent_id, prompt, status, status_reason, result, error, progress_done, progress_total,
                                 cost_micros, run_id, created_at, updated_at, started_at, finished_at, require_approval,
                                 api_key_id, idempotency_key, request_hash)
       select s.id, s.agent_id, format('Scale task %s: write about durable execution and checkpoints', s.g), s.status,
              case s.status when 'waiting_approval' then 'waiting for approval of draft (revision 1)'
                            when 'waiting_budget' then 'daily budget reached' when 'stopped' then 'max_turns reached' end,
              case when s.status in ('completed', 'stopped', 'rejected')
                   then jsonb_build_object('text', repeat('A finished answer with some length. ', 20), 'turns', s.turns) end,
              case when s.status = 'failed' then jsonb_build_object('message', 'the model kept failing', 'name', 'Error') end,
              case when s.status = 'queued' then 0 when s.status in ('running', 'waiting_budget') then s.turns - 1 else s.turns end,
              6, case when s.status = 'queued' then 0 else s.turns * (2000 + (s.h * 37) % 20000) end,
              case when s.status <> 'queued' then 'run-' || s.g end,
              s.created_at, s.created_at + interval '1 minute',
              case when s.status <> 'queued' then s.created_at + interval '1 second' end,
              case when s.status in ('completed', 'failed', 'stopped', 'rejected', 'cancelled')
                   then s.created_at + make_interval(secs => 5 + s.turns * 4) end,
              s.agent_id = 'content',
              -- half came through the API with an Idempotency-Key
              case when s.g % 2 = 0 then $1 end, case when s.g % 2 = 0 then 'idem-' || s.g end,
              case when s.g % 2 = 0 then md5(s.g::text) end
         from seed s`,
      [apiKeyId],
    );
    await q(
      `create temporary table seed_steps on commit drop as
       select s.id as task_id, s.agent_id, s.created_at, s.h, t as turn, s.turns, s.g,
              case when s.status in ('running', 'waiting_budget') and t = s.turns then 'running' else 'completed' end as status
         from seed s, generate_series(1, s.turns) t where s.status <> 'queued'`,
    );
    await q(
      `insert into public.task_steps (task_id, step_id, kind, status, detail, input_tokens, output_tokens, cost_micros, started_at, finished_at)
       select task_id, 'turn-' || turn, 'model', status,
              jsonb_build_object('duration_ms', 800 + (h * 13) % 4000, 'stop_reason', case when turn = turns then 'end_turn' else 'tool_use' end),
              1200 + (h * 7) % 3000, 200 + (h * 11) % 900, case when status = 'completed' then 2000 + (h * 37) % 20000 else 0 end,
              created_at + make_interval(secs => turn * 4),
              case when status = 'completed' then created_at + make_interval(secs => turn * 4 + 2) end
         from seed_steps
       union all
       select task_id, 'tool-1-web_fetch', 'tool', 'completed',
              jsonb_build_object('tool', 'web_fetch', 'is_error', false, 'replayed', false, 'duration_ms', 300 + h % 700),
              0, 0, 0, created_at + interval '3 seconds', created_at + interval '4 seconds'
         from seed_steps where turn = 1 and turns > 1`,
    );
    await q(SEED_RESERVATIONS_SQL);
    await q(SEED_WINDOWS_SQL);
    // A long timeline: one finished task with bigTaskSteps steps (the task page with many steps).
    const big = (await q(`select id from seed where status = 'completed' and g > 1000 order by g limit 1`)).rows[0].id as string;
    await q(
      `insert into public.task_steps (task_id, step_id, kind, status, detail, input_tokens, output_tokens, cost_micros, started_at, finished_at)
       select $1, case when t % 2 = 0 then 'turn-' || (100 + t) else format('tool-%s-web_fetch', 100 + t) end,
              case when t % 2 = 0 then 'model' else 'tool' end, 'completed', jsonb_build_object('duration_ms', 900),
              1000, 300, 1000, now() - make_interval(secs => 86400 - t), now() - make_interval(secs => 86400 - t - 1)
         from generate_series(1, $2::int) t`,
      [big, o.bigTaskSteps],
    );

    // Approvals: every content task's draft plus one on a further slice of the others, so about 30k over 200k tasks.
    await q(
      `insert into public.approvals (task_id, stage, revision, draft, status, notes, decided_by, decided_via, auto_action,
                                     requested_at, visible_at, expires_at, decided_at)
       select s.id, 'draft', 1, jsonb_build_object('text', format('Draft %s: %s', s.g, repeat('A paragraph of a draft. ', 10))),
              case when s.status = 'waiting_approval' then 'pending' when s.status = 'rejected' then 'rejected'
                   when s.h % 50 = 0 then 'expired' else 'approved' end,
              case when s.status = 'rejected' then 'off brand' end,
              case when s.status = 'waiting_approval' then null when s.h % 50 = 0 then 'timeout' else 'console:operator' end,
              case when s.status = 'waiting_approval' then null when s.h % 50 = 0 then 'timeout' else 'console' end,
              'reject', s.created_at + interval '30 seconds', s.created_at + interval '31 seconds',
              s.created_at + interval '24 hours 30 seconds',
              case when s.status <> 'waiting_approval' then s.created_at + interval '10 minutes' end
         from seed s
        where (s.agent_id = 'content' and s.status in ('waiting_approval', 'completed', 'rejected'))
           or (s.g % 7 = 0 and s.status = 'completed' and s.agent_id <> 'content')`,
    );
    await q(
      `insert into public.dead_letters (task_id, agent_id, prompt, failure_kind, summary, error, failed_step, attempts, cost_micros,
                                        status, resolved_by, resolved_at, created_at)
       select s.id, s.agent_id, 'Scale task ' || s.g, 'model_error', 'the model kept failing',
              jsonb_build_object('message', 'the model kept failing'), 'turn-1', 4, 1000,
              case when s.g < 20000 then 'pending' when s.h % 2 = 0 then 'replayed' else 'discarded' end,
              case when s.g >= 20000 then 'console:operator' end,
              case when s.g >= 20000 then s.created_at + interval '1 day' end,
              s.created_at + interval '1 minute'
         from seed s where s.status = 'failed'`,
    );
    // Pipelines: one a night per agent pair, each with its three stages.
    await q(
      `insert into public.pipelines (topic, report_agent_id, status, created_at, updated_at, started_at, finished_at)
       select format('Pipeline topic %s', g), 'research', 'completed', now() - make_interval(secs => g * 3600),
              now() - make_interval(secs => g * 3600), now() - make_interval(secs => g * 3600),
              now() - make_interval(secs => g * 3600 - 600)
         from generate_series(1, $1::int * 24) g`,
      [o.days],
    );
    await q(
      `insert into public.pipeline_stages (pipeline_id, stage, position, agent_id, status, output, attempts, started_at, finished_at)
       select p.id, st.stage, st.pos, 'research', 'completed', jsonb_build_object('text', 'stage output'), 1, p.started_at, p.finished_at
         from public.pipelines p, (values ('research', 1), ('analyze', 2), ('report', 3)) st(stage, pos)`,
    );
    await q(
      `insert into public.schedules (name, agent_id, cron, prompt_template, enabled, next_run_at, last_run_at, created_at)
       select format('nightly-%s', g), ($1::text[])[1 + g % array_length($1::text[], 1)], '0 2 * * *', 'Nightly job {{date}}',
              g % 5 <> 0, case when g % 5 <> 0 then date_trunc('day', now()) + interval '1 day 2 hours' end,
              date_trunc('day', now()) + interval '2 hours', now() - interval '90 days'
         from generate_series(1, 50) g`,
      [agentIds],
    );
    await q(
      `insert into public.schedule_firings (schedule_id, scheduled_for, fired_at)
       select s.id, date_trunc('day', now()) - make_interval(days => d) + interval '2 hours',
              date_trunc('day', now()) - make_interval(days => d) + interval '2 hours 1 second'
         from public.schedules s, generate_series(1, $1::int) d`,
      [o.days],
    );
    // The outbox row each submission wrote, sent a moment later; the newest few still pending.
    await q(
      `insert into public.outbox (event_id, name, data, created_at, available_at, attempts, sent_at)
       select 'task-requested-' || s.id, 'task/run.requested', jsonb_build_object('task_id', s.id, 'agent', s.agent_id),
              s.created_at, s.created_at, case when s.g <= 20 then 0 else 1 end,
              case when s.g > 20 then s.created_at + interval '50 milliseconds' end
         from seed s`,
    );
    // Callbacks for one task in ten, with one to three attempts each.
    await q(
      `insert into public.webhook_deliveries (message_id, task_id, kind, event_type, url, payload, status, attempts,
                                              last_status_code, created_at, updated_at, finished_at)
       select 'msg_' || s.id, s.id, 'callback', 'task.completed', 'https://example.com/hook', '{"task_id":"' || s.id || '"}',
              'delivered', 1 + s.h % 3, 200, s.created_at + interval '1 minute', s.created_at + interval '2 minutes',
              s.created_at + interval '2 minutes'
         from seed s where s.g % 10 = 0 and s.status = 'completed'`,
    );
    await q(
      `insert into public.webhook_delivery_attempts (delivery_id, attempt, outcome, status_code, duration_ms, at)
       select d.id, a, case when a = d.attempts then 'delivered' else 'retry' end, case when a = d.attempts then 200 else 503 end,
              120, d.created_at + make_interval(secs => a * 10)
         from public.webhook_deliveries d, generate_series(1, 3) a where a <= d.attempts`,
    );
    // The operator signs in about twice a day; bots knock on the login form from many addresses.
    await q(
      `insert into public.console_sessions (sid, created_at, expires_at, ended_at)
       select md5('sid' || g), now() - make_interval(hours => g * 12), now() - make_interval(hours => g * 12 - 24),
              case when g % 3 = 0 then now() - make_interval(hours => g * 12 - 2) end
         from generate_series(1, $1::int * 2) g`,
      [o.days],
    );
    await q(
      `insert into public.console_login_limits (client, attempts, failures, window_started_at, updated_at)
       select format('10.%s.%s.%s', g / 65536 % 256, g / 256 % 256, g % 256), 3, 3,
              now() - make_interval(secs => g * 500), now() - make_interval(secs => g * 500)
         from generate_series(1, 10000) g`,
    );
    await q(
      `insert into public.notifications (kind, dedupe_key, agent_id, title, body, created_at, delivered_at)
       select 'budget_reached', format('budget:%s:%s', w.agent_id, w.window_start), w.agent_id, 'Daily budget reached', 'The agent paused.',
              w.window_start + interval '20 hours', w.window_start + interval '20 hours 1 second'
         from public.budget_windows w`,
    );
    await q(
      `insert into public.notification_deliveries (notification_id, channel, status, attempts, sent_at, created_at, updated_at)
       select n.id, 'slack', 'sent', 1, n.delivered_at, n.created_at, n.delivered_at from public.notifications n`,
    );
    await q(
      `insert into public.side_effects (task_id, tool_use_id, tool, request_hash, request, status, result, completed_at, created_at, claimed_at)
       select s.id, 'toolu_' || s.g, 'send_email', encode(extensions.digest(s.g::text, 'sha256'), 'hex'),
              jsonb_build_object('to', 'someone@example.com'), 'completed', jsonb_build_object('id', 'email-' || s.g),
              s.created_at + interval '5 seconds', s.created_at + interval '4 seconds', s.created_at + interval '4 seconds'
         from seed s where s.agent_id = 'outreach' and s.status = 'completed'`,
    );
    await q(
      `insert into public.artifacts (task_id, tool_use_id, name, content_type, content, bytes, sha256, created_at)
       select s.id, 'toolu_a' || s.g, 'report.md', 'text/markdown', repeat('# Report\n', 20), 180,
              encode(extensions.digest('a' || s.g, 'sha256'), 'hex'), s.created_at + interval '6 seconds'
         from seed s where s.agent_id = 'research' and s.status = 'completed'`,
    );
    await q(
      `insert into public.agent_changes (agent_id, actor, changes, changed_at)
       select ($1::text[])[1 + g % array_length($1::text[], 1)], 'console:operator', '{"daily_budget_micros": 2000000}',
              now() - make_interval(hours => g)
         from generate_series(1, 500) g`,
      [agentIds],
    );

    // The local engine's tables as a month of finished runs leaves them: one event and one run per task (seq grows
    // with time, as the engine numbers them), a memo per step, and the run's history (started, each step, finished).
    await q(
      `insert into inngest_local.events (internal_id, seq, name, id, payload, received_at, processed)
       select 'ev-' || s.g, $1::int - s.g + 1, 'task/run.requested', 'task-requested-' || s.id, jsonb_build_object('data', jsonb_build_object('task_id', s.id)),
              (extract(epoch from s.created_at) * 1000)::bigint, true
         from seed s`,
      [o.tasks],
    );
    await q(
      `insert into inngest_local.runs (id, function_id, status, event_id, event, event_seq, created_at, started_at, ended_at, output)
       select 'run-' || s.g, 'nightshift-run-task',
              case when s.status in ('queued', 'running', 'waiting_budget', 'waiting_approval') then 'running' else 'completed' end,
              'ev-' || s.g, jsonb_build_object('name', 'task/run.requested', 'data', jsonb_build_object('task_id', s.id)), $1::int - s.g + 1,
              (extract(epoch from s.created_at) * 1000)::bigint, (extract(epoch from s.created_at) * 1000)::bigint + 10,
              case when s.status not in ('queued', 'running', 'waiting_budget', 'waiting_approval')
                   then (extract(epoch from s.created_at) * 1000)::bigint + 20000 end,
              jsonb_build_object('status', s.status)
         from seed s`,
      [o.tasks],
    );
    await q(
      `insert into inngest_local.memos (run_id, hash, pos, value, at)
       select 'run-' || g, md5('turn-' || turn), turn, jsonb_build_object('data', jsonb_build_object('stop_reason', 'end_turn')),
              (extract(epoch from created_at) * 1000)::bigint + turn * 4000
         from seed_steps`,
    );
    await q(
      `insert into inngest_local.history (run_id, at, type, step, name)
       select 'run-' || s.g, (extract(epoch from s.created_at) * 1000)::bigint + k * 1000,
              case k when 0 then 'FunctionStarted' when 3 then 'FunctionCompleted' else 'StepCompleted' end,
              case when k in (1, 2) then 'turn-' || k end, null
         from seed s, generate_series(0, 3) k`,
    );

    const pending = (
      await q(`select id from public.approvals where status = 'pending' and visible_at is not null order by requested_at limit 1`)
    ).rows[0].id as string;
    const dl = (await q(`select id from public.dead_letters where status = 'pending' order by created_at desc limit 1`)).rows[0]
      .id as string;
    await q("commit");
    await q(`analyze`);

    const counts: Record<string, number> = {};
    for (const t of TABLES) counts[t] = Number((await q(`select count(*) as n from public.${t}`)).rows[0].n);
    for (const t of ENGINE_TABLES) counts[`inngest_local.${t}`] = Number((await q(`select count(*) as n from inngest_local.${t}`)).rows[0].n);
    return { counts, agentIds, apiKeyId, bigTaskId: big, pendingApprovalId: pending, deadLetterId: dl, seconds: (Date.now() - t0) / 1000 };
  } catch (e) {
    await q("rollback").catch(() => {});
    throw e;
  }
}
