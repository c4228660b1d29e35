// lib/relay-lane.ts: the outbox relay's lanes of passes. What a caller relies on: once its run() resolves, a round
// that BEGAN after its call has ended (so what it recorded before calling was claimed), however its call falls
// against the rounds of the passes already running — including the turn right after a pass's last round, where a
// caller used to join a pass that had already ended its loop (session 5's race fix). No clock: rounds end on
// setImmediate, calls land at every microtask depth around a round's end.
import { describe, expect, test } from "vitest";
import { RelayLane } from "@/lib/relay-lane";

interface Round {
  start: number;
  end: number;
}
interface Call {
  calledAt: number;
  resolvedAt: number;
}

/** A lane whose rounds take one macrotask, stamped on one sequence shared with the calls. */
function lane(maxPasses: number, o: { onRoundEnd?: (i: number) => void; fail?: (i: number) => boolean } = {}) {
  let seq = 0;
  const rounds: Round[] = [];
  const calls: Call[] = [];
  const l: RelayLane = new RelayLane(maxPasses, async () => {
    const r = { start: ++seq, end: 0 };
    const i = rounds.push(r) - 1;
    await new Promise((res) => setImmediate(res));
    r.end = ++seq;
    o.onRoundEnd?.(i);
    return o.fail?.(i) ? { sent: 0, failed: 1 } : { sent: 1, failed: 0 };
  });
  const call = async () => {
    const c = { calledAt: ++seq, resolvedAt: 0 };
    calls.push(c);
    await l.run();
    c.resolvedAt = ++seq;
  };
  /** Every resolved call saw a round start after it and end before it resolved. */
  const covered = () =>
    calls.map((c) => ({ ...c, covered: rounds.some((r) => r.start > c.calledAt && r.end > 0 && r.end < c.resolvedAt) }));
  return { lane: l, rounds, calls, call, covered };
}

/** `depth` microtasks from now. */
function microtasks(depth: number): Promise<void> {
  let p = Promise.resolve();
  for (let i = 0; i < depth; i++) p = p.then(() => {});
  return p;
}

describe("RelayLane", () => {
  test("a call at any microtask around the end of a pass's last round is covered by a round that began after it", async () => {
    for (const maxPasses of [1, 2]) {
      for (let depth = 0; depth <= 16; depth++) {
        let probe: Promise<void> | undefined;
        const t = lane(maxPasses, {
          // After the first round ends (its body returns), a caller arrives `depth` microtasks later: somewhere in the
          // pass's loop check, its exit, its removal, or after.
          onRoundEnd: (i) => {
            if (i === 0) probe = microtasks(depth).then(() => t.call());
          },
        });
        await t.call();
        await probe;
        const seen = t.covered();
        expect(seen, `maxPasses ${maxPasses}, depth ${depth}`).toHaveLength(2);
        for (const c of seen) expect(c.covered, `maxPasses ${maxPasses}, depth ${depth}: ${JSON.stringify(seen)}`).toBe(true);
      }
    }
  });

  test("a burst of callers is covered with fewer rounds than callers, and never more passes at once than allowed", async () => {
    let running = 0;
    let most = 0;
    let seq = 0;
    const rounds: Round[] = [];
    const calls: Call[] = [];
    const l = new RelayLane(2, async () => {
      running++;
      most = Math.max(most, running);
      const r = { start: ++seq, end: 0 };
      rounds.push(r);
      await new Promise((res) => setImmediate(res));
      r.end = ++seq;
      running--;
      return { sent: 1, failed: 0 };
    });
    const waits: Promise<void>[] = [];
    // 60 callers spread over macrotasks and microtasks.
    for (let i = 0; i < 60; i++) {
      if (i % 3 === 0) await new Promise((res) => setImmediate(res));
      else await microtasks(i % 7);
      const c = { calledAt: ++seq, resolvedAt: 0 };
      calls.push(c);
      waits.push(l.run().then(() => void (c.resolvedAt = ++seq)));
    }
    await Promise.all(waits);
    expect(most).toBeLessThanOrEqual(2);
    expect(rounds.length).toBeLessThan(60);
    for (const c of calls) expect(rounds.some((r) => r.start > c.calledAt && r.end < c.resolvedAt)).toBe(true);
  });

  test("a failed round ends its pass (no rerun loop against a down event API); the next call starts a new pass", async () => {
    const t = lane(1, { fail: (i) => i === 0 });
    const first = t.lane.run();
    const second = t.lane.run(); // asks the running pass to run again — but its round fails
    expect(await first).toEqual({ sent: 0, failed: 1 });
    expect(await second).toEqual({ sent: 0, failed: 1 });
    expect(t.rounds).toHaveLength(1);
    expect(await t.lane.run()).toEqual({ sent: 1, failed: 0 });
    expect(t.rounds).toHaveLength(2);
  });
});
