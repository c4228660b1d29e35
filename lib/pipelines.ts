// Pipelines: research -> analyze -> report (mission pattern 2). The API records a pipeline and its three stages and
// announces it; three Inngest functions (inngest/functions/pipeline-*.ts) each run one stage as an ordinary agent
// task and hand over to the next by event. This module is the domain those functions and the routes compose:
// creation with idempotency, the stage state machine (Postgres functions, compare-and-set), the prompts each stage
// builds from the previous stage's stored output, the stage outputs, the wire shape, and the owner's notice.
import { createHash } from "node:crypto";
import canonicalize from "canonicalize";
import { z } from "zod";
import type { AdminClient } from "@/lib/db/admin";
import type { Json } from "@/lib/db/database.types";
import { ApiError } from "@/lib/http/errors";
import { databaseUnavailable, isDatabaseUnreachable } from "@/lib/db/errors";
import { notify } from "@/lib/notifications";
import { kickOutboxRelay } from "@/lib/outbox";
import { insertTask } from "@/lib/tasks/service";

// ---------------------------------------------------------------------------------------------------------------
// Wire format

export const MAX_TOPIC_CHARS = 10_000;

export const CreatePipelineBody = z.strictObject({
  topic: z
    .string({ error: "topic is required and must be a string" })
    .trim()
    .min(1, "topic must not be empty")
    .max(MAX_TOPIC_CHARS, `topic must be at most ${MAX_TOPIC_CHARS} characters`),
  report_agent: z
    .string({ error: "report_agent must be an agent id" })
    .regex(/^[a-z][a-z0-9_-]{1,39}$/, { message: "report_agent must be an agent id such as research or content" })
    .optional(),
});
export type CreatePipelineBody = z.infer<typeof CreatePipelineBody>;

export const PipelineId = z.uuid();

export const STAGES = ["research", "analyze", "report"] as const;
export type Stage = (typeof STAGES)[number];
export type PipelineStatus = "queued" | "running" | "completed" | "failed";
export type StageStatus = "pending" | "running" | "completed" | "failed";

/** The agent that researches and analyzes. The report's agent is the request's `report_agent`, or this one. */
export const PIPELINE_AGENT = "research";

/**
 * How many runs of each stage function may execute at once (Inngest `concurrency`). Each stage has its own
 * limit, so a burst of new pipelines cannot starve the analyses and reports of the ones already under way.
 */
export const STAGE_CONCURRENCY: Record<Stage, number> = { research: 4, analyze: 4, report: 2 };

// ---------------------------------------------------------------------------------------------------------------
// Creation

export interface CreatedPipeline {
  pipelineId: string;
  outcome: "created" | "replayed";
  status: PipelineStatus;
}

function requestHash(body: CreatePipelineBody): string {
  return createHash("sha256")
    .update(canonicalize(body) ?? "")
    .digest("hex");
}

/**
 * Queues a pipeline: records it, its three pending stages and its start event `pipeline/run.requested` (id
 * pipeline-run-<id>) in one transaction (submit_pipeline; idempotent per API key + Idempotency-Key). The outbox
 * relay sends the event (docs/outbox.md). `relay: "none"` when the caller relays itself after its response.
 */
export async function submitPipeline(
  db: AdminClient,
  body: CreatePipelineBody,
  apiKeyId: string | null,
  idempotencyKey: string | null,
  opts: { relay?: "background" | "none" } = {},
): Promise<CreatedPipeline> {
  const res = await db.rpc("submit_pipeline", {
    p_topic: body.topic,
    p_report_agent_id: body.report_agent ?? PIPELINE_AGENT,
    p_api_key_id: apiKeyId ?? (null as unknown as string),
    p_idempotency_key: idempotencyKey ?? (null as unknown as string),
    p_request_hash: requestHash(body),
  });
  const { data, error } = res;
  if (error) {
    if (isDatabaseUnreachable(res)) throw databaseUnavailable();
    if (error.code === "NSA01") {
      const agent = body.report_agent ?? PIPELINE_AGENT;
      throw new ApiError(400, "invalid_request", `Invalid request body: report_agent: unknown or disabled agent '${agent}'`, [
        { field: "report_agent", message: `unknown or disabled agent '${agent}'` },
      ]);
    }
    throw new Error(`submit_pipeline failed: ${error.message}`);
  }
  const row = Array.isArray(data) ? data[0] : data;
  if (!row) throw new Error("submit_pipeline returned no row");
  if (row.outcome === "conflict") {
    throw new ApiError(409, "idempotency_conflict", "This Idempotency-Key was already used with a different request body", {
      pipeline_id: row.pipeline_id,
    });
  }
  if (row.outcome === "created" && opts.relay !== "none") void kickOutboxRelay();
  return { pipelineId: row.pipeline_id, outcome: row.outcome as CreatedPipeline["outcome"], status: row.status as PipelineStatus };
}

// ---------------------------------------------------------------------------------------------------------------
// The stage state machine (each transition one Postgres function; see the migration 20261126093000_pipelines.sql)

export type ClaimOutcome = "started" | "resumed" | "busy" | "finished" | "failed" | "not_ready";

export interface StageClaim {
  outcome: ClaimOutcome;
  taskId: string | null;
  attempts: number;
}

/** A stage run claims its stage; only `started`/`resumed` may go on (anything else: a duplicate or a finished stage). */
export async function claimStage(db: AdminClient, pipelineId: string, stage: Stage, runId: string): Promise<StageClaim> {
  const { data, error } = await db.rpc("start_pipeline_stage", { p_pipeline_id: pipelineId, p_stage: stage, p_run_id: runId });
  if (error) throw new Error(`start_pipeline_stage failed: ${error.message}`);
  const row = Array.isArray(data) ? data[0] : data;
  if (!row) throw new Error("start_pipeline_stage returned no row");
  return { outcome: row.outcome as ClaimOutcome, taskId: row.task_id, attempts: row.attempts };
}

export interface StageTask {
  task_id: string;
  agent: string;
}

/**
 * Creates the stage's agent task (not announced: the stage function runs it with step.invoke) from the previous
 * stage's stored output, and attaches it to the stage. Idempotent: the task's idempotency key is
 * `pipeline-<id>-<stage>`, so a re-run step finds the task it created before.
 */
export async function createStageTask(db: AdminClient, pipelineId: string, stage: Stage, runId: string): Promise<StageTask> {
  const { data: p, error } = await db
    .from("pipelines")
    .select("id,topic,api_key_id,pipeline_stages(stage,agent_id,output,replays,prompt_override)")
    .eq("id", pipelineId)
    .single();
  if (error) throw new Error(`pipeline ${pipelineId} read failed: ${error.message}`);
  const stages = p.pipeline_stages as { stage: Stage; agent_id: string; output: Json | null; replays: number; prompt_override: string | null }[];
  const mine = stages.find((s) => s.stage === stage);
  if (!mine) throw new Error(`pipeline ${pipelineId} has no ${stage} stage`);
  const outputOf = (s: Stage) => stageText(stages.find((x) => x.stage === s)?.output ?? null);
  // A dead-letter replay of this stage with an edited prompt runs that prompt instead of the built one.
  const prompt = mine.prompt_override ?? stagePrompt(stage, p.topic, { research: outputOf("research"), analyze: outputOf("analyze") });
  // A stage reopened by a dead-letter replay gets a new task (its own key), not the failed one.
  const key = `pipeline-${pipelineId}-${stage}${mine.replays > 0 ? `-replay-${mine.replays}` : ""}`;
  const task = await insertTask(db, { agent: mine.agent_id, prompt }, p.api_key_id, key);
  const { data: taskId, error: setError } = await db.rpc("set_pipeline_stage_task", {
    p_pipeline_id: pipelineId,
    p_stage: stage,
    p_run_id: runId,
    p_task_id: task.taskId,
  });
  if (setError) throw new Error(`set_pipeline_stage_task failed: ${setError.message}`);
  return { task_id: taskId as string, agent: mine.agent_id };
}

/** The most of a previous stage's output quoted into the next stage's prompt. */
const MAX_QUOTED_CHARS = 40_000;

/** The task prompt of each stage. Each one quotes the topic, so the stage's work is traceable to the request. */
export function stagePrompt(stage: Stage, topic: string, previous: { research?: string | null; analyze?: string | null }): string {
  const quote = (text: string | null | undefined, what: string) => {
    if (!text) throw new Error(`the ${what} is missing: the previous stage has no stored output`);
    return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS)}\n[... cut at ${MAX_QUOTED_CHARS} characters]` : text;
  };
  switch (stage) {
    case "research":
      return [
        "Research the topic below for a report. Collect the relevant facts, figures and sources, and finish with a concise",
        "summary of your findings.",
        "",
        `Topic: ${topic}`,
      ].join("\n");
    case "analyze":
      return [
        "Analyze the research findings below. Identify the key insights, trends, risks and open questions, and say how",
        "confident you are in each conclusion.",
        "",
        `Topic: ${topic}`,
        "",
        "Research findings:",
        quote(previous.research, "research findings"),
      ].join("\n");
    case "report":
      return [
        "Write the final report on the topic below for its owner, based on the analysis. Start with a short executive",
        "summary, then the details and your recommendations.",
        "",
        `Topic: ${topic}`,
        "",
        "Analysis:",
        quote(previous.analyze, "analysis"),
      ].join("\n");
  }
}

/** What a stage stores: the text (bounded; the full text stays in its task's result) and how it was produced. */
export interface StageOutput {
  text: string;
  chars: number;
  truncated: boolean;
  /** The agent stopped at a limit (max_turns, wall clock) and this is its partial result. */
  partial: boolean;
  task_status: string;
  turns: number | null;
  cost_micros: number;
}

/** Stage outputs stay small: they are quoted into the next prompt and read by the API (the column allows 128 KiB). */
const MAX_OUTPUT_BYTES = 96 * 1024;

function boundedText(text: string): { text: string; truncated: boolean } {
  let out = text.length > 30_000 ? text.slice(0, 30_000) : text;
  while (Buffer.byteLength(JSON.stringify(out), "utf8") > MAX_OUTPUT_BYTES) out = out.slice(0, Math.floor(out.length / 2));
  return { text: out, truncated: out.length < text.length };
}

function stageText(output: Json | null): string | null {
  const text = (output as { text?: unknown } | null)?.text;
  return typeof text === "string" ? text : null;
}

export type StoreOutcome = { ok: true } | { ok: false; reason: string };

/**
 * Reads the stage's finished task and stores its output on the stage (CAS: once, by the owning run). A task that
 * did not produce a result (failed, rejected, cancelled, or stopped with nothing) fails the stage and the pipeline.
 */
export async function storeStageOutput(db: AdminClient, pipelineId: string, stage: Stage, runId: string, taskId: string): Promise<StoreOutcome> {
  const { data: t, error } = await db.from("tasks").select("status,status_reason,result,cost_micros").eq("id", taskId).single();
  if (error) throw new Error(`task ${taskId} read failed: ${error.message}`);
  const result = (t.result ?? {}) as { text?: unknown; turns?: unknown };
  const text = typeof result.text === "string" ? result.text : "";
  const usable = (t.status === "completed" || t.status === "stopped") && text.trim() !== "";
  if (!usable) {
    const reason = `the ${stage} stage's task ended ${t.status}${t.status_reason ? `: ${t.status_reason}` : ""}`;
    await failStage(db, pipelineId, stage, { task_id: taskId, task_status: t.status, message: reason }, reason);
    return { ok: false, reason };
  }
  const bounded = boundedText(text);
  const output: StageOutput = {
    text: bounded.text,
    chars: text.length,
    truncated: bounded.truncated,
    partial: t.status === "stopped",
    task_status: t.status,
    turns: typeof result.turns === "number" ? result.turns : null,
    cost_micros: Number(t.cost_micros),
  };
  const { data: completed, error: rpcError } = await db.rpc("complete_pipeline_stage", {
    p_pipeline_id: pipelineId,
    p_stage: stage,
    p_run_id: runId,
    p_output: output as unknown as Json,
  });
  if (rpcError) throw new Error(`complete_pipeline_stage failed: ${rpcError.message}`);
  if (!completed) return { ok: false, reason: `the ${stage} stage is no longer owned by run ${runId}` };
  return { ok: true };
}

/** Fails a stage and its pipeline, once; false when it had already ended. */
export async function failStage(db: AdminClient, pipelineId: string, stage: Stage, error: Json, reason: string): Promise<boolean> {
  const { data, error: rpcError } = await db.rpc("fail_pipeline_stage", {
    p_pipeline_id: pipelineId,
    p_stage: stage,
    p_error: error,
    p_reason: reason,
  });
  if (rpcError) throw new Error(`fail_pipeline_stage failed: ${rpcError.message}`);
  return data === true;
}

// ---------------------------------------------------------------------------------------------------------------
// The owner's notice

/**
 * Tells the owner the report is ready, through lib/notifications (every configured channel, with a link to the
 * report task), once per pipeline: dedupe key `report-ready-<pipeline id>`. A channel that fails never fails the
 * pipeline: notify() only records the notice and hands it to its own delivery run.
 */
export async function notifyReportReady(
  db: AdminClient,
  p: { pipelineId: string; topic: string; reportTaskId: string | null },
): Promise<void> {
  const topic = p.topic.length > 200 ? `${p.topic.slice(0, 200)}…` : p.topic;
  await notify(db, {
    kind: "report_ready",
    dedupeKey: `report-ready-${p.pipelineId}`,
    title: "Your report is ready",
    body: `The pipeline on "${topic}" finished: research, analysis and the report are done.`,
    taskId: p.reportTaskId,
    link: p.reportTaskId ? `/tasks/${p.reportTaskId}` : null,
    payload: { pipeline_id: p.pipelineId, report_task_id: p.reportTaskId },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Reads for the API

export interface PipelineStageWire {
  stage: Stage;
  status: StageStatus;
  agent: string;
  task_id: string | null;
  task_status: string | null;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  /** A summary of the stored output: its start, its size, and whether it is partial. The full text is the task's. */
  output: { summary: string; chars: number; truncated: boolean; partial: boolean; cost_micros: number } | null;
  error: Json | null;
  /** Built from cached research: { reason, cached_at } (docs/failures.md). */
  degraded: Json | null;
}

export interface PipelineWire {
  pipeline_id: string;
  status: PipelineStatus;
  status_reason: string | null;
  topic: string;
  report_agent: string;
  stages: PipelineStageWire[];
  /** The report itself once the pipeline completed (the report task's text, bounded like every stage output). */
  report: { task_id: string | null; text: string } | null;
  /** The report was built from cached research: { reason, cached_at }. */
  degraded: Json | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

const SUMMARY_CHARS = 500;

const PIPELINE_COLUMNS =
  "id,status,status_reason,topic,report_agent_id,report_task_id,created_at,updated_at,started_at,finished_at,degraded," +
  "pipeline_stages(stage,position,status,agent_id,task_id,attempts,started_at,finished_at,output,error,degraded,tasks(status))";

export async function getPipeline(db: AdminClient, pipelineId: string): Promise<PipelineWire | null> {
  const { data, error } = await db.from("pipelines").select(PIPELINE_COLUMNS).eq("id", pipelineId).maybeSingle();
  if (error) throw new Error(`pipeline lookup failed: ${error.message}`);
  return data ? toPipelineWire(data) : null;
}

/** The newest pipelines with their stages (one query), for the console. */
export async function listPipelines(db: AdminClient, limit = 20): Promise<PipelineWire[]> {
  const { data, error } = await db
    .from("pipelines")
    .select(PIPELINE_COLUMNS)
    .order("created_at", { ascending: false })
    .order("id", { ascending: false })
    .limit(limit);
  if (error) throw new Error(`pipeline list failed: ${error.message}`);
  return (data ?? []).map(toPipelineWire);
}

function toPipelineWire(data: unknown): PipelineWire {
  const row = data as {
    id: string;
    status: PipelineStatus;
    status_reason: string | null;
    topic: string;
    report_agent_id: string;
    report_task_id: string | null;
    created_at: string;
    updated_at: string;
    started_at: string | null;
    finished_at: string | null;
    degraded: Json | null;
    pipeline_stages: {
      stage: Stage;
      position: number;
      status: StageStatus;
      agent_id: string;
      task_id: string | null;
      attempts: number;
      started_at: string | null;
      finished_at: string | null;
      output: (StageOutput & Record<string, unknown>) | null;
      error: Json | null;
      degraded: Json | null;
      tasks: { status: string } | null;
    }[];
  };
  const stages = [...row.pipeline_stages].sort((a, b) => a.position - b.position);
  const report = stages.find((s) => s.stage === "report");
  return {
    pipeline_id: row.id,
    status: row.status,
    status_reason: row.status_reason,
    topic: row.topic,
    report_agent: row.report_agent_id,
    stages: stages.map((s) => ({
      stage: s.stage,
      status: s.status,
      agent: s.agent_id,
      task_id: s.task_id,
      task_status: s.tasks?.status ?? null,
      attempts: s.attempts,
      started_at: s.started_at,
      finished_at: s.finished_at,
      output: s.output
        ? {
            summary: s.output.text.length > SUMMARY_CHARS ? `${s.output.text.slice(0, SUMMARY_CHARS)}…` : s.output.text,
            chars: s.output.chars,
            truncated: s.output.truncated,
            partial: s.output.partial,
            cost_micros: s.output.cost_micros,
          }
        : null,
      error: s.error,
      degraded: s.degraded,
    })),
    report: row.status === "completed" && report?.output ? { task_id: row.report_task_id, text: report.output.text } : null,
    degraded: row.degraded,
    created_at: row.created_at,
    updated_at: row.updated_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  };
}
