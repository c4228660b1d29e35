// Cron triggers: one timer per function and schedule, kept across syncs when the schedule is unchanged; a
// tick starts a run and arms the next tick (missed ticks are not back-filled, as in Inngest).
import { nextCronTime } from "./cron";
import { INTERNAL } from "./protocol";
import type { FunctionDef } from "./registry";
import type { WorkRow } from "./store";
import { Tx, workRow, mkEvent, jitter } from "./core";
import { Dispatch } from "./dispatch";

export abstract class CronTimers extends Dispatch {
  protected async fireCron(w: WorkRow): Promise<void> {
    const fn = w.function_id ? this.functions.get(w.function_id) : undefined;
    const spec = String(w.data?.["cron"] ?? "");
    const tx = new Tx();
    this.delWork(tx, w.id, undefined);
    const trig = fn?.cronTriggers.find((c) => c.cron === spec);
    if (fn && trig) {
      const now = this.clock.now();
      const event = mkEvent(INTERNAL.cron, { cron: spec }, now);
      const seq = ++this.eventSeq;
      tx.ch.events.push({ internal_id: event.id, seq, name: event.name, id: null, payload: event, received_at: now, processed: true, duplicate: false });
      this.createRun(tx, fn, event, event.id, seq);
      // Missed ticks (engine down) are not back-filled, as in Inngest: the next tick is after now.
      const next = nextCronTime(spec, Math.max(now, w.due_at ?? now));
      if (next !== undefined) this.addWork(tx, workRow("cron", null, null, next + jitter(trig.jitterMs), { cron: spec }, 0, fn.id), undefined);
      this.log(`cron ${spec} fired for ${fn.id}`);
    }
    await this.commit(tx);
  }

  /** At sync: keep an app's cron timers whose schedule did not change, replace the others. */
  protected cronChanges(appId: string, defs: FunctionDef[], now: number): { remove: WorkRow[]; add: WorkRow[] } {
    const existing = [...this.work.values()].filter(
      (w) => w.kind === "cron" && w.function_id && this.functions.get(w.function_id)?.appId === appId,
    );
    const remove: WorkRow[] = [];
    const keep = new Set<string>();
    for (const w of existing) {
      const def = defs.find((d) => d.id === w.function_id);
      const spec = w.data?.["cron"];
      if (def && def.cronTriggers.some((c) => c.cron === spec) && !keep.has(`${def.id} ${spec}`)) {
        keep.add(`${def.id} ${spec}`);
      } else remove.push(w);
    }
    const add: WorkRow[] = [];
    for (const d of defs) {
      for (const c of d.cronTriggers) {
        if (keep.has(`${d.id} ${c.cron}`)) continue;
        keep.add(`${d.id} ${c.cron}`);
        const at = nextCronTime(c.cron, now);
        if (at === undefined) continue;
        add.push(workRow("cron", null, null, at + jitter(c.jitterMs), { cron: c.cron }, 0, d.id));
      }
    }
    return { remove, add };
  }
}
