// Runs one agent task durably. Each model call is its own step (`turn-N`) that reserves the worst case in the
// agent's daily budget before calling Claude and settles the real cost after; each tool call is its own step
// (`tool-N-<name>`). Hard limits: max_turns (stopped, partial result kept), the agent's wall clock (a turn that
// cannot finish in time is not started), max_tokens on every call, and the agent's concurrency (a turn waits for
// one of its `concurrency` slots; waiting tasks hold none). When the budget refuses a turn, the task
// waits for the agent's next budget window (`waiting_budget`) and carries on. Where a human must decide (the
// task asked for it, or the agent always does, like content drafts), the draft waits for approval: approve
// finishes it, approve-with-changes sends the notes back for one revision, reject (or no decision by the
// deadline) ends it `rejected`. A run that fails after its retries marks the task failed and gives back any
// reservation still held. Every end — completed, stopped, rejected, failed, cancelled — emits task/run.finished
// once (inngest/announce-end.ts); that event delivers the callback (deliver-task-callback.ts).
import type Anthropic from "@anthropic-ai/sdk";
import { NonRetriableError } from "inngest";
import { inngest } from "@/inngest/client";
import { announceEnd } from "@/inngest/announce-end";
import { awaitApproval, type ApprovalOutcome } from "@/inngest/approval";
import { approveToolCall, RUN_FINISH, TOOLS_NEEDING_APPROVAL, type ToolGate } from "@/inngest/tool-approval";
import { budgetAgentFreed, taskRunFinished, taskRunFinishedId, taskRunRequested } from "@/inngest/events";
import { waitForBudget, waitForRateLimit, waitForSlot } from "@/inngest/waits";
import { abandonBatchTurn, awaitBatchTurn, cancelBatchTurn, cancelOpenBatches, checkBatchTurn, submitBatchTurn, type BatchSubmitOutcome } from "@/lib/agents/batch-turn";
import { callWay } from "@/lib/agents/call-mode";
import { releaseSlot } from "@/lib/agents/slots";
import { loadToolConfig, runToolCall } from "@/lib/agents/tools";
import { OUTAGE_WAITS_PER_TURN, runModelTurn, textOf, type Message, type TurnOutcome } from "@/lib/agents/turn";
import { approvalEditedText, autoActionWords, fitDraftText } from "@/lib/approvals";
import { releaseOpenReservations } from "@/lib/budget";
import { MAX_RATE_LIMITED_ATTEMPTS } from "@/lib/pacing";
import { notify } from "@/lib/notifications";
import { CircuitOpenError } from "@/lib/breakers";
import type { Json } from "@/lib/db/database.types";
import { db } from "@/lib/db/server";
import { env } from "@/lib/env";
import { fileDeadLetter } from "@/lib/dead-letters";
import { dependencyWaitReason, markWaitingDependency, resumeDependencyWait } from "@/lib/tasks/dependency-wait";
import { finishTask, recordStep, resumeTask, startTask } from "@/lib/tasks/lifecycle";

/** work()'s answer when the task was cancelled under the run. */
const ENDED = "\u0000ended";

/** A turn is not started unless this much time is left on the agent's wall clock (or more, if turns ran longer). */
const MIN_TURN_BUDGET_MS = 15_000;
/** The most of a draft shown to a reviewer inline (bigger drafts belong in artifacts). */
const MAX_DRAFT_CHARS = 60_000;

type Step = Parameters<Parameters<typeof inngest.createFunction>[1]>[0]["step"];
type Terminal = "completed" | "stopped" | "rejected";

export const runTask = inngest.createFunction(
  {
    id: "run-task",
    name: "Run an agent task",
    triggers: [taskRunRequested],
    // POST /api/tasks/:id/cancel records the cancellation, then this event stops the run.
    cancelOn: [{ event: "task/run.cancelled", if: "async.data.task_id == event.data.task_id" }],
    retries: 4,
    // Backstop only: the agent's own wall clock is enforced in the loop. A run may legitimately wait a day for a
    // budget window and up to two approval windows (a turn's emails, then the final draft; at most 7 days each):
    // 16 days, and an email is not asked once it could not be decided in time (inngest/tool-approval.ts).
    timeouts: { finish: RUN_FINISH },
    onFailure: async ({ event, error, step }) => {
      const taskId = (event.data.event.data as { task_id: string }).task_id;
      const marked = await step.run("mark-failed", async () => {
        await cancelOpenBatches(db(), taskId); // a batch turn still queued at Anthropic would be billed for nothing
        await releaseOpenReservations(db(), taskId);
        await releaseSlot(db(), taskId);
        // Fails the task and files its one dead letter in one transaction, the failure said in words.
        return fileDeadLetter(db(), taskId, { name: error.name, message: error.message });
      });
      // Announced either way: a task that had ended already (cancelled) is announced with its own status, once.
      await announceEnd(step, taskId);
      if (!marked) return; // it had ended already (e.g. cancelled): nothing failed
      await step.run("notify-failed", () =>
        notify(db(), {
          kind: "task_failed",
          dedupeKey: `task_failed:${taskId}`,
          title: "A task failed",
          body: `${marked.reason} It waits in the dead-letter queue for review and replay.`,
          taskId,
          link: "/failed",
        }),
      );
    },
  },
  async ({ event, step, runId, attempt }) => {
    const taskId = event.data.task_id;
    const task = await step.run("start", () => startTask(db(), taskId, runId));
    if (!task) {
      await announceEnd(step, taskId); // e.g. cancelled before its run started (a repeat is dropped by the event id)
      return { task_id: taskId, skipped: "task already finished" };
    }

    const { agent } = task;
    // mode "batch": each model call goes through the Message Batches API at half price (overnight work can wait);
    // mode "auto": while the task's deadline leaves room for a batch (lib/agents/call-mode.ts).
    const serverWebSearch = Boolean(env().ANTHROPIC_API_KEY) && agent.id === "research";
    const messages: Message[] = [{ role: "user", content: promptWithInput(task.prompt, task.input) }];
    // Everything below is rebuilt identically on every replay from memoized step outputs.
    let turn = 0;
    let answer = ""; // the text of the current answer (continuations of a max_tokens cut are appended)
    let continuing = false;
    let lastAt = task.startedAt; // wall clock: measured from the start, minus time spent waiting for a budget
    let waitedMs = 0;
    let longestTurnMs = 0;
    let wakeAt = 0;
    let provider429s = 0;

    /** Runs model turns until the agent answers; a string is the reason it had to stop. */
    async function work(): Promise<null | string> {
      while (turn < agent.max_turns) {
        turn += 1;
        const deadline = task!.startedAt + agent.wall_clock_seconds * 1000 + waitedMs;
        if (lastAt + Math.max(MIN_TURN_BUDGET_MS, longestTurnMs * 1.5) > deadline) {
          return `wall clock (${agent.wall_clock_seconds} s) reached before turn ${turn}`;
        }
        const turnId = `turn-${turn}`;
        // Decided on memoized times only (the previous turn's end, a wait's end): a replay picks the same steps.
        let batch = callWay(task!, Math.max(lastAt, wakeAt), env().NIGHTSHIFT_BATCH_ROOM_S) === "batch";
        let outageWaits = 0; // this turn's outage failures that waited instead of spending a retry attempt
        let slotWaits = 0; // this turn's waits for a slot: their fallback grows with these only (inngest/waits.ts)
        const turnArgs = () => ({
          taskId, turnId, agent, messages, attempt, now: new Date(Math.max(Date.now(), wakeAt)), serverWebSearch, priority: task!.priority,
          outageWaitsLeft: OUTAGE_WAITS_PER_TURN - outageWaits,
        });
        const callTurn = (): Promise<TurnOutcome | BatchSubmitOutcome> =>
          batch ? submitBatchTurn(db(), turnArgs()) : runModelTurn(db(), turnArgs());
        let out: TurnOutcome | BatchSubmitOutcome = await step.run(batch ? `${turnId}-submit` : turnId, callTurn);
        let wait = 1;
        let downSince: number | undefined; // when this turn began waiting for its model's dependency

        for (;;) {
          // Not answered yet: wait for a free slot or for the next budget window, then try the same turn again.
          for (; out.kind !== "answered" && out.kind !== "submitted"; wait++) {
            if (out.kind === "ended") return ENDED;
            if (out.kind === "dependency_down") {
              // The model's breaker is open: no attempt is burned; the run sleeps durably until the next probe.
              const down = out;
              if (down.transient) outageWaits += 1;
              giveUpOnDependency((downSince ??= down.refused_at), down.retry_at, down.dependency);
              await step.run(`dependency-wait-${turn}-${wait}`, async () => {
                await releaseSlot(db(), taskId); // a waiting task does not hold one of the agent's slots
                await markWaitingDependency(db(), taskId, dependencyWaitReason(down.dependency, down.retry_at, down.last_error, down.transient));
              });
              await step.sleepUntil(`dependency-sleep-${turn}-${wait}`, down.retry_at);
              wakeAt = Math.max(wakeAt, Date.parse(down.retry_at));
              waitedMs += Math.max(0, Date.parse(down.retry_at) - down.refused_at);
            } else if (out.kind === "busy") {
              // In the agent's line: woken by the hand-over of a slot, not by polling (inngest/waits.ts).
              await waitForSlot(step, { taskId, agentId: agent.id, turn, wait, slotWait: ++slotWaits });
            } else if (out.kind === "rate_limited") {
              // Paced (or a 429): the database marked the task waiting_rate_limit with the model and the time.
              if (out.provider_429 && ++provider429s > MAX_RATE_LIMITED_ATTEMPTS) {
                return `rate limited by the provider ${provider429s - 1} times in a row on turn ${turn} (${out.model})`;
              }
              const waited = await waitForRateLimit(step, { turn, wait, limited: out });
              wakeAt = Math.max(wakeAt, waited.clock);
              waitedMs += waited.waitedMs;
            } else {
              const refused = out;
              if (refused.never_fits) {
                return `one call's worst case (${usd(refused.needed_micros)}) exceeds ${agent.id}'s whole daily budget (${usd(refused.cap_micros)})`;
              }
              const waited = await waitForBudget(step, { taskId, agentId: agent.id, turn, wait, refused });
              wakeAt = Math.max(wakeAt, waited.clock);
              waitedMs += waited.waitedMs;
            }
            out = await step.run(`${turnId}-retry-${wait}`, async () => {
              await resumeDependencyWait(db(), taskId);
              // Back to running only once the call is admitted (money and rate limit), so a re-check that waits again
              // does not flicker the task's status.
              if (batch) await resumeTask(db(), taskId, runId);
              return batch ? callTurn() : runModelTurn(db(), { ...turnArgs(), onAdmitted: () => resumeTask(db(), taskId, runId) });
            });
          }

          if (out.kind === "submitted") {
            // Mode auto with a deadline: a batch still running when too little time is left for a direct call is
            // cancelled (what it did before the cancel is used and charged), and the turn runs directly.
            const deadline = task!.mode === "auto" && task!.deadline ? task!.deadline : null;
            const answered = await awaitBatchTurn(step, out, {
              check: (ticket, opts) => checkBatchTurn(db(), { ...turnArgs(), ticket, ...opts }),
              resubmit: (ticket, submission, notBefore = 0) =>
                submitBatchTurn(db(), { ...turnArgs(), now: new Date(Math.max(Date.now(), wakeAt, notBefore)), submission, reservationKey: ticket.reservation_key }),
              abandon: (ticket, reason) => abandonBatchTurn(db(), { taskId, turnId, ticket, reason }),
            }, deadline ? {
              cancelAt: Date.parse(deadline) - env().NIGHTSHIFT_DIRECT_ROOM_S * 1000,
              cancel: (ticket) => cancelBatchTurn(db(), { taskId, turnId, model: agent.model, ticket, deadline }),
            } : undefined);
            waitedMs += answered.kind === "cancelled" ? answered.wait_ms : answered.batch.wait_ms; // queued at Anthropic: not the agent's wall clock
            if (answered.kind === "cancelled") {
              batch = false;
              out = await step.run(`${turnId}-direct`, callTurn);
              continue;
            }
            out = answered;
          }
          break;
        }

        if (out.wake_budget) {
          // This turn settled below its reservation while other tasks of the agent wait for money: wake them.
          await step.sendEvent(`budget-wake-${turn}`, budgetAgentFreed.create({ agent_id: agent.id, reason: "settled" }));
        }
        messages.push({ role: "assistant", content: out.content as Anthropic.ContentBlockParam[] });
        answer = (continuing ? answer : "") + textOf(out.content);
        continuing = out.stop_reason === "max_tokens";
        lastAt = out.finished_at;
        longestTurnMs = Math.max(longestTurnMs, out.duration_ms);

        if (out.stop_reason === "tool_use") {
          // A task that needs approval sends nothing before a person approved it (inngest/tool-approval.ts).
          const gate: ToolGate | null = task!.requireApproval || agent.requires_approval
            ? { agentId: agent.id, prompt: task!.prompt, timeoutSeconds: agent.approval_timeout_seconds, runStartedAt: task!.startedAt }
            : null;
          const ran = await runTools(step, taskId, turn, out.content, wakeAt, gate);
          messages.push({ role: "user", content: ran.results });
          // Time spent waiting for a tool's dependency (its breaker open) is not the agent's wall clock.
          wakeAt = Math.max(wakeAt, ran.wakeAt);
          waitedMs += ran.waitedMs;
        } else if (out.stop_reason === "max_tokens") {
          messages.push({ role: "user", content: "Continue exactly where you stopped." });
        } else if (out.stop_reason !== "pause_turn") {
          return null; // answered (a server tool's pause_turn is sent back as is)
        }
      }
      return `max_turns (${agent.max_turns}) reached`;
    }

    /** Records the outcome, then announces it (task/run.finished, which delivers the callback), once. */
    async function end(status: Terminal, extra: { reason?: string; approval?: ApprovalOutcome } = {}) {
      const result: Json = {
        text: answer,
        turns: turn,
        ...(status === "stopped" ? { partial: true } : {}),
        ...(extra.approval ? { approval: { decision: extra.approval.decision, notes: extra.approval.notes, decided_via: extra.approval.decided_via, ...(extra.approval.edited ? { edited: true } : {}) } } : {}),
      };
      // One step ends the task, gives its slot back and tells the operator (notify dedupes, so a retry is safe).
      const { costMicros } = await step.run("finish", async () => {
        await releaseSlot(db(), taskId);
        await finishTask(db(), taskId, { status, result, reason: extra.reason });
        await notify(db(), {
          kind: "task_finished",
          dedupeKey: `task_finished:${taskId}`,
          title: `${agent.id} task ${status}`,
          body: `${status === "completed" ? "Finished" : status === "stopped" ? `Stopped (${extra.reason})` : `Rejected (${extra.reason})`}: ${task!.prompt.slice(0, 200)}`,
          agentId: agent.id,
          taskId,
        });
        return { costMicros: await taskCost(taskId) };
      });
      // For other apps and functions that react to finished work (the catalog's task/run.finished).
      await step.sendEvent(
        "emit-finished",
        taskRunFinished.create({ task_id: taskId, agent: agent.id, status, cost_micros: costMicros }, { id: taskRunFinishedId(taskId) }),
      );
      return { task_id: taskId, status, ...(extra.reason ? { reason: extra.reason } : {}), turns: turn };
    }

    const stopped = await work();
    if (stopped === ENDED) {
      await announceEnd(step, taskId);
      return { task_id: taskId, skipped: "the task ended (cancelled) while its run went on" };
    }
    if (stopped) return end("stopped", { reason: stopped });

    if (task.requireApproval || agent.requires_approval) {
      await step.run("release-slot-for-approval", () => releaseSlot(db(), taskId));
      const approval = await awaitApproval(step, {
        taskId,
        stage: "draft",
        revision: 1,
        // Cut to what approvals.draft holds in bytes, not characters (60,000 "é" would fail the task).
        draft: draftFor(answer.slice(0, MAX_DRAFT_CHARS), agent.id, task.prompt),
        timeoutSeconds: agent.approval_timeout_seconds,
        autoAction: agent.approval_auto_action,
        onVisible: async (a) => {
          await notify(db(), {
            kind: "approval_requested",
            dedupeKey: `approval_requested:${a.id}`,
            title: `A ${agent.id} draft waits for your review`,
            body: `${task.prompt.slice(0, 200)} — decide by ${a.expires_at}, or it is ${autoActionWords(agent.approval_auto_action)}.`,
            agentId: agent.id,
            taskId,
            link: "/review",
          });
        },
      });
      if (approval.decision === "reject") {
        const reason =
          approval.decided_via === "timeout"
            ? `no decision before the deadline: ${autoActionWords(agent.approval_auto_action)}`
            : `rejected${approval.notes ? `: ${approval.notes}` : ""}`;
        return end("rejected", { reason, approval });
      }
      if (approval.decision === "approve_with_changes") {
        messages.push({
          role: "user",
          content: `A reviewer approved this draft with changes. Apply them and reply with the complete revised draft only.\n\nRequested changes:\n${approval.notes ?? ""}`,
        });
        continuing = false;
        const revisionStopped = await work();
        if (revisionStopped === ENDED) {
          await announceEnd(step, taskId);
          return { task_id: taskId, skipped: "the task ended (cancelled) while its run went on" };
        }
        if (revisionStopped) return end("stopped", { reason: `${revisionStopped} while revising`, approval });
      }
      // Edit, then approve: the reviewer's text is what the task publishes.
      if (approval.edited) answer = (await step.run("approval-draft-1-edited", () => approvalEditedText(db(), approval.approval_id))) ?? answer;
      return end("completed", { approval });
    }
    return end("completed");
  },
);

/** Runs each tool call of a turn as its own step and returns the tool_result blocks for the next turn. */
/**
 * Runs each tool call of a turn as its own step and returns the tool_result blocks for the next turn. A tool whose
 * dependency is behind an open circuit breaker (send_email while Resend is down) does not fail or burn a retry: its
 * step answers the wait, the task waits (`waiting_dependency`), the run sleeps until the breaker's next probe and runs
 * the call again (`<step>-retry-<n>`; the side-effect ledger still sends it at most once).
 */
/**
 * How long one wait for a dependency (its breaker open: the model's provider, or a tool's) may last before the run gives
 * up: the bound the run's 72 h `timeouts.finish` gave before that limit grew to 16 days so a task can wait for people
 * (RUN_FINISH). The task fails into the dead-letter queue as a time limit ("… stayed down for 72 h", lib/failures.ts),
 * decided from values the run memoized, so every replay decides alike.
 */
const DEPENDENCY_GIVE_UP_MS = 72 * 3_600_000;

function giveUpOnDependency(since: number, retryAt: string, dependency: string): void {
  if (Date.parse(retryAt) - since <= DEPENDENCY_GIVE_UP_MS) return;
  throw new NonRetriableError(
    `dependency wait: waited ${Math.round(DEPENDENCY_GIVE_UP_MS / 3_600_000)} h for ${dependency}, still down; the run gives up`,
  );
}

async function runTools(
  step: Step,
  taskId: string,
  turn: number,
  content: Anthropic.ContentBlock[],
  wokeAt: number,
  gate: ToolGate | null,
): Promise<{ results: Anthropic.ToolResultBlockParam[]; wakeAt: number; waitedMs: number }> {
  const seen = new Map<string, number>();
  const calls = content
    .filter((b): b is Anthropic.ToolUseBlock => b.type === "tool_use")
    .map((call) => {
      const n = (seen.get(call.name) ?? 0) + 1;
      seen.set(call.name, n);
      return { call, n, stepId: `tool-${turn}-${call.name}${n > 1 ? `-${n}` : ""}` };
    });
  const results: Anthropic.ToolResultBlockParam[] = [];
  let wakeAt = wokeAt;
  let waitedMs = 0;
  // All of the turn's calls that need a person are asked at once (distinct stages and step ids; the review page shows
  // them side by side): one wait for the turn, not one after another, each up to the agent's approval window.
  const asked = new Map(
    await Promise.all(
      calls
        .filter(({ call }) => gate && TOOLS_NEEDING_APPROVAL.has(call.name))
        .map(async ({ call, n, stepId }) => [stepId, await approveToolCall(step, { taskId, turn, stepId, k: n, call, gate: gate! })] as const),
    ),
  );
  // The waits overlapped: the longest is the time spent waiting for people (not the agent's wall clock).
  for (const a of asked.values()) {
    waitedMs = Math.max(waitedMs, a.waitedMs);
    wakeAt = Math.max(wakeAt, a.decidedAt);
  }
  for (const { call, stepId } of calls) {
    let input: unknown = call.input;
    const approved = asked.get(stepId);
    if (approved) {
      if ("result" in approved) {
        results.push(approved.result);
        continue;
      }
      input = approved.input;
    }
    let downSince: number | undefined; // when this call began waiting for its tool's dependency
    for (let w = 0; ; w++) {
      const id = w === 0 ? stepId : `${stepId}-retry-${w}`;
      const out = await step.run(id, async () => {
        const started = Date.now();
        const now = new Date(Math.max(Date.now(), wakeAt));
        if (w > 0) await resumeDependencyWait(db(), taskId);
        let r;
        try {
          r = await runToolCall(call.name, input, { db: db(), taskId, toolUseId: call.id, config: loadToolConfig(), now });
        } catch (err) {
          if (!(err instanceof CircuitOpenError)) throw err;
          return { waiting_for: err.dependency, retry_at: err.nextProbeAt, refused_at: now.getTime() };
        }
        await recordStep(db(), {
          taskId,
          stepId,
          kind: "tool",
          status: "completed",
          detail: { tool: call.name, is_error: r.is_error === true, replayed: r.replayed === true, duration_ms: Date.now() - started },
        });
        return { type: r.type, tool_use_id: r.tool_use_id, content: r.content, ...(r.is_error ? { is_error: true as const } : {}) };
      });
      if (!("waiting_for" in out)) {
        results.push(out);
        break;
      }
      giveUpOnDependency((downSince ??= out.refused_at), out.retry_at, out.waiting_for);
      await step.run(`${stepId}-wait-${w + 1}`, async () => {
        await releaseSlot(db(), taskId); // a waiting task does not hold one of the agent's slots
        await markWaitingDependency(db(), taskId, dependencyWaitReason(out.waiting_for, out.retry_at, null));
      });
      await step.sleepUntil(`${stepId}-sleep-${w + 1}`, out.retry_at);
      const retryAt = Date.parse(out.retry_at);
      waitedMs += Math.max(0, retryAt - out.refused_at);
      wakeAt = Math.max(wakeAt, retryAt);
    }
  }
  return { results, wakeAt, waitedMs };
}

/** The final draft as the reviewer sees it, cut to what approvals.draft holds (bytes, not characters). */
function draftFor(text: string, agentId: string, prompt: string): Json {
  const p = prompt.slice(0, 2000);
  return { text: fitDraftText(text, (t) => ({ text: t, agent: agentId, prompt: p })), agent: agentId, prompt: p };
}

async function taskCost(taskId: string): Promise<number> {
  const { data, error } = await db().from("tasks").select("cost_micros").eq("id", taskId).single();
  if (error) throw new Error(`task cost read failed: ${error.message}`);
  return Number(data.cost_micros);
}

function promptWithInput(prompt: string, input: unknown): string {
  if (input === null || input === undefined) return prompt;
  return `${prompt}\n\nInput (JSON):\n${JSON.stringify(input, null, 2)}`;
}

const usd = (micros: number) => `$${(micros / 1_000_000).toFixed(2)}`;
