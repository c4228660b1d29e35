// Events in: persisted with everything they cause in one transaction: new runs, waits they match (only
// waits registered before the event arrived), cancelOn listeners they trigger. Ids seen in 24 h are dropped.
import { matches } from "./cel";
import { ulid } from "./ids";
import type { EngineEvent, IncomingEvent } from "./protocol";
import { triggerMatches } from "./registry";
import { TERMINAL, type EventRow } from "./store";
import { DEDUPE_WINDOW, Tx, workRow, stripNullish } from "./core";
import { RunLifecycle } from "./runs";

export abstract class Events extends RunLifecycle {
  /** Accepts events: persists them and, in the same transaction, starts runs, resumes waits, cancels runs. */
  async ingest(events: IncomingEvent[]): Promise<string[]> {
    const now = this.clock.now();
    const tx = new Tx();
    const ids: string[] = [];
    for (const e of events) {
      const internalId = ulid();
      const userId = e.id ?? null;
      const seenAt = userId ? this.seenIds.get(userId) : undefined;
      const duplicate = seenAt !== undefined && now - seenAt < DEDUPE_WINDOW;
      if (userId && !duplicate) {
        this.seenIds.set(userId, now);
        tx.undo.push(() => {
          if (seenAt === undefined) this.seenIds.delete(userId);
          else this.seenIds.set(userId, seenAt);
        });
      }
      const payload = {
        ...stripNullish(e),
        id: userId ?? internalId,
        name: e.name,
        data: (e.data ?? {}) as Record<string, unknown>,
        ts: e.ts ?? now,
      } as EngineEvent;
      const row: EventRow = {
        internal_id: internalId,
        seq: ++this.eventSeq,
        name: e.name,
        id: userId,
        payload,
        received_at: now,
        processed: true,
        duplicate,
      };
      tx.ch.events.push(row);
      if (duplicate) this.log(`event ${e.name} id=${userId} dropped: duplicate id within 24h`);
      else this.fanOut(tx, row);
      ids.push(internalId);
    }
    await this.commit(tx);
    return ids;
  }

  /** Everything an event causes: new runs, matched waits, cancellations. Memory claims happen now. */
  protected fanOut(tx: Tx, row: EventRow): void {
    const event = row.payload;
    const now = this.clock.now();
    for (const fn of this.functions.values()) {
      for (const t of fn.eventTriggers) {
        if (!triggerMatches(t, event.name)) continue;
        if (t.expression && !matches(t.expression, { event })) continue;
        this.createRun(tx, fn, event, row.internal_id, row.seq);
        break;
      }
    }
    const set = this.listeners.get(event.name);
    if (!set) return;
    for (const id of [...set]) {
      const w = this.work.get(id);
      if (!w || !w.run_id) continue;
      const data = w.data as { if?: string; after_seq: number; name?: string };
      // Only events received after the wait (or the run, for cancelOn) was registered can match.
      if (data.after_seq >= row.seq) continue;
      const run = this.runs.get(w.run_id);
      if (!run || TERMINAL.has(run.row.status)) continue;
      if (data.if && !matches(data.if, { event: run.row.event, async: event })) continue;
      this.unindex(w);
      tx.undo.push(() => this.index(w));
      if (w.kind === "wait" && w.step) {
        this.prefetchMemo(run);
        const ready = this.waitReady.get(w.id);
        if (ready) tx.waitFor.push(ready);
        this.delWork(tx, w.id, run);
        const r = workRow("resume", run.row.id, w.step, now, {
          value: { data: event },
          reason: "wait.matched",
          name: data.name,
          event_id: row.internal_id,
        });
        this.addWork(tx, r, run);
        const prev = run.pending.get(w.step);
        run.pending.set(w.step, { workId: r.id, kind: "resume" });
        tx.undo.push(() => {
          if (prev) run.pending.set(w.step!, prev);
        });
      } else if (w.kind === "cancel") {
        this.delWork(tx, w.id, run);
        this.addWork(
          tx,
          workRow("cancel_run", run.row.id, null, now, {
            reason: `cancelled by event ${event.name} (${row.internal_id})`,
          }),
          run,
        );
      }
    }
  }
}
