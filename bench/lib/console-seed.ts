// Seeds a console's worth of history straight into Postgres for bench/console.ts: `tasks` tasks spread over the
// last `spreadHours`, newest first, with a spread of agents and statuses, each with its step timeline (model turns,
// a tool call for research), the budget ledger those turns would have written (settled reservations, reserved for
// the ones in flight) with its per-agent-per-day counters, and the approvals content drafts produce (pending and
// visible for the tasks waiting on a reviewer, decided for the finished ones). Deterministic: the same arguments
// give the same data, ids aside.
import type pg from "pg";

export interface SeedSummary {
  tasks: number;
  steps: number;
  reservations: number;
  windows: number;
  approvals: number;
  pendingApprovals: number;
  byStatus: Record<string, number>;
  byAgent: Record<string, number>;
  /** Tasks created in the last 16 hours (the morning summary's window). */
  overnight: number;
  /** A finished research task with the longest timeline: the /tasks/<id> page measured. */
  detailTaskId: string;
  detailSteps: number;
}

/** The budget ledger the seeded turns would have written: a reservation per turn (temporary table seed_steps:
 * task_id, agent_id, created_at, h, turn, status), settled for a completed turn. Shared with bench/lib/scale-seed.ts. */
export const SEED_RESERVATIONS_SQL = `insert into public.budget_reservations (task_id, step_id, agent_id, model, window_start, reserved_micros, actual_micros,
                                               input_tokens, output_tokens, status, reserved_at, settled_at)
       select task_id, 'turn-' || turn, agent_id,
              case agent_id when 'outreach' then 'claude-haiku-4-5' else 'claude-sonnet-4-6' end,
              (created_at at time zone 'UTC')::date, 70000,
              case when status = 'completed' then 2000 + (h * 37) % 20000 end,
              case when status = 'completed' then 1200 + (h * 7) % 3000 else 0 end,
              case when status = 'completed' then 200 + (h * 11) % 900 else 0 end,
              case when status = 'completed' then 'settled' else 'reserved' end::public.budget_reservation_status,
              created_at + make_interval(secs => turn * 4),
              case when status = 'completed' then created_at + make_interval(secs => turn * 4 + 2) end
         from seed_steps`;

/** The per-agent-per-day counters over the seeded ledger, as reserve_budget keeps them. Shared with scale-seed.ts. */
export const SEED_WINDOWS_SQL = `insert into public.budget_windows (agent_id, window_start, reserved_micros, settled_micros, cap_micros, reservations, settlements,
                                          timezone, starts_at, ends_at)
       select r.agent_id, r.window_start,
              coalesce(sum(r.reserved_micros) filter (where r.status = 'reserved'), 0),
              coalesce(sum(r.actual_micros) filter (where r.status = 'settled'), 0),
              -- a cap the day's spend fits under, as reserve_budget would have enforced
              greatest(a.daily_budget_micros, coalesce(sum(r.actual_micros), 0) + sum(r.reserved_micros) + 1000000),
              count(*), count(*) filter (where r.status = 'settled'),
              -- the window's zone and bounds, as reserve_budget records them (NOT NULL since 20261129140000)
              'UTC', r.window_start::timestamp at time zone 'UTC', (r.window_start + 1)::timestamp at time zone 'UTC'
         from public.budget_reservations r join public.agents a on a.id = r.agent_id
        group by r.agent_id, r.window_start, a.daily_budget_micros`;

export async function seedConsoleHistory(sql: pg.Client, opts: { tasks: number; spreadHours: number }): Promise<SeedSummary> {
  const spacingSeconds = (opts.spreadHours * 3600) / opts.tasks;
  await sql.query("begin");
  try {
    // g = 1 is the newest task. h is a cheap deterministic hash of g, used for the status and amounts.
    await sql.query(
      `create temporary table seed on commit drop as
       select g,
              (g * 2654435761::bigint) % 1000 as h,
              case when g % 10 < 5 then 'research' when g % 10 < 8 then 'content' else 'outreach' end as agent_id,
              now() - make_interval(secs => g * $2::float8) as created_at,
              1 + (g % 4) as turns
         from generate_series(1, $1::int) g`,
      [opts.tasks, spacingSeconds],
    );
    await sql.query(
      `alter table seed add column status public.task_status, add column id uuid default gen_random_uuid()`,
    );
    // The newest 100 hold what is in flight now; the rest finished, mostly completed.
    await sql.query(
      `update seed set status = case
         when g <= 100 and agent_id = 'content' then 'waiting_approval'
         when g <= 100 and g % 10 < 2 then 'running'
         when g <= 100 and g % 10 < 4 then 'queued'
         when g <= 100 and g % 10 = 4 then 'waiting_budget'
         when h < 800 then 'completed'
         when h < 880 then 'failed'
         when h < 930 then 'stopped'
         when h < 970 and agent_id = 'content' then 'rejected'
         when h < 970 then 'completed'
         else 'cancelled' end::public.task_status`,
    );

    await sql.query(
      `insert into public.tasks (id, agent_id, prompt, status, status_reason, result, error, progress_done, progress_total,
                                 cost_micros, run_id, created_at, updated_at, started_at, finished_at, require_approval)
       select s.id, s.agent_id,
              format('Bench task %s: %s', s.g, repeat('write about durable execution and checkpoints ', 2)),
              s.status,
              case s.status when 'waiting_approval' then 'waiting for approval of draft (revision 1)'
                            when 'waiting_budget' then 'daily budget reached'
                            when 'stopped' then 'max_turns reached'
                            when 'rejected' then 'rejected: off brand' else null end,
              case when s.status in ('completed', 'stopped', 'rejected')
                   then jsonb_build_object('text', repeat('A finished answer with some length. ', 20), 'turns', s.turns) end,
              case when s.status = 'failed' then jsonb_build_object('message', 'the model kept failing', 'name', 'Error') end,
              case when s.status in ('queued') then 0 when s.status in ('running', 'waiting_budget') then s.turns - 1 else s.turns end,
              6,
              case when s.status = 'queued' then 0 else s.turns * (2000 + (s.h * 37) % 20000) end,
              case when s.status = 'queued' then null else 'run-' || s.g end,
              s.created_at, s.created_at + interval '1 minute',
              case when s.status = 'queued' then null else s.created_at + interval '1 second' end,
              case when s.status in ('completed', 'failed', 'stopped', 'rejected', 'cancelled')
                   then s.created_at + make_interval(secs => 5 + s.turns * 4) end,
              s.agent_id = 'content'
         from seed s`,
    );

    // Model turns (each with its reservation) and, for research, one tool call after the first turn.
    await sql.query(
      `create temporary table seed_steps on commit drop as
       select s.id as task_id, s.agent_id, s.status as task_status, s.created_at, s.h, t as turn, s.turns,
              -- the last turn of a task still running is itself running
              case when s.status in ('running', 'waiting_budget') and t = s.turns then 'running' else 'completed' end as status
         from seed s, generate_series(1, s.turns) t
        where s.status <> 'queued'`,
    );
    await sql.query(
      `insert into public.task_steps (task_id, step_id, kind, status, detail, input_tokens, output_tokens, cost_micros, started_at, finished_at)
       select task_id, 'turn-' || turn, 'model', status,
              jsonb_build_object('duration_ms', 800 + (h * 13) % 4000, 'stop_reason', case when turn = turns then 'end_turn' else 'tool_use' end),
              1200 + (h * 7) % 3000, 200 + (h * 11) % 900,
              case when status = 'completed' then 2000 + (h * 37) % 20000 else 0 end,
              created_at + make_interval(secs => turn * 4),
              case when status = 'completed' then created_at + make_interval(secs => turn * 4 + 2) end
         from seed_steps
       union all
       select task_id, 'tool-1-web_fetch', 'tool', 'completed',
              jsonb_build_object('tool', 'web_fetch', 'is_error', false, 'replayed', false, 'duration_ms', 300 + h % 700),
              0, 0, 0, created_at + interval '3 seconds', created_at + interval '4 seconds'
         from seed_steps where agent_id = 'research' and turn = 1 and turns > 1`,
    );
    await sql.query(SEED_RESERVATIONS_SQL);
    await sql.query(SEED_WINDOWS_SQL);
    await sql.query(
      `insert into public.approvals (task_id, stage, revision, draft, status, notes, decided_by, decided_via, auto_action,
                                     requested_at, visible_at, expires_at, decided_at)
       select s.id, 'draft', 1,
              jsonb_build_object('text', format('Draft %s: %s', s.g, repeat('A paragraph of a blog post draft. ', 15)), 'agent', 'content'),
              case s.status when 'waiting_approval' then 'pending' when 'rejected' then 'rejected' else 'approved' end,
              case when s.status = 'rejected' then 'off brand' end,
              case when s.status = 'waiting_approval' then null else 'console:operator' end,
              case when s.status = 'waiting_approval' then null else 'console' end,
              'reject',
              s.created_at + interval '30 seconds', s.created_at + interval '31 seconds',
              s.created_at + interval '30 seconds' + interval '24 hours',
              case when s.status = 'waiting_approval' then null else s.created_at + interval '10 minutes' end
         from seed s
        where s.agent_id = 'content' and s.status in ('waiting_approval', 'completed', 'rejected')`,
    );

    const detail = await sql.query<{ id: string; n: number }>(
      `select s.id, count(ts.*)::int as n from seed s join public.task_steps ts on ts.task_id = s.id
        where s.agent_id = 'research' and s.status = 'completed' group by s.id, s.g order by n desc, s.g limit 1`,
    );
    await sql.query("commit");
    // What autovacuum would do within a minute of a bulk insert like this one.
    await sql.query("analyze public.tasks, public.task_steps, public.budget_reservations, public.budget_windows, public.approvals");

    const count = async (q: string) => Number((await sql.query<{ n: string }>(q)).rows[0]!.n);
    const group = async (col: string) =>
      Object.fromEntries(
        (await sql.query<{ k: string; n: string }>(`select ${col}::text as k, count(*) as n from public.tasks group by 1 order by 2 desc`)).rows.map((r) => [
          r.k,
          Number(r.n),
        ]),
      );
    return {
      tasks: await count("select count(*) as n from public.tasks"),
      steps: await count("select count(*) as n from public.task_steps"),
      reservations: await count("select count(*) as n from public.budget_reservations"),
      windows: await count("select count(*) as n from public.budget_windows"),
      approvals: await count("select count(*) as n from public.approvals"),
      pendingApprovals: await count("select count(*) as n from public.approvals where status = 'pending' and visible_at is not null"),
      byStatus: await group("status"),
      byAgent: await group("agent_id"),
      overnight: await count("select count(*) as n from public.tasks where created_at >= now() - interval '16 hours'"),
      detailTaskId: detail.rows[0]!.id,
      detailSteps: detail.rows[0]!.n,
    };
  } catch (e) {
    await sql.query("rollback").catch(() => {});
    throw e;
  }
}
