// Test functions covering every op and option the local engine implements, written as an app would write
// them. Step bodies count their executions so tests can assert "ran exactly once".
import { Inngest, NonRetriableError, RetryAfterError, type InngestFunction } from "inngest";
import { Counter, latch } from "./engine-harness";

export interface Hooks {
  counter: Counter;
  /** Holds for step bodies, by key: the body signals `reached` and waits for `open`. */
  holds: Map<string, ReturnType<typeof latch>>;
  failures: { data: Record<string, unknown>; message: string }[];
  concurrency: { current: Map<string, number>; max: Map<string, number> };
}

export function newHooks(): Hooks {
  return { counter: new Counter(), holds: new Map(), failures: [], concurrency: { current: new Map(), max: new Map() } };
}

export function holdFor(h: Hooks, key: string): ReturnType<typeof latch> {
  let l = h.holds.get(key);
  if (!l) h.holds.set(key, (l = latch()));
  return l;
}

export function conformanceFunctions(inngest: Inngest.Any, h: Hooks): InngestFunction.Any[] {
  const c = h.counter;

  const sequential = inngest.createFunction({ id: "sequential", triggers: [{ event: "test/sequential" }] }, async ({ event, step }) => {
    const a = await step.run("a", () => {
      c.hit("seq:a");
      return { n: 1, text: "x".repeat(2048) };
    });
    const b = await step.run("b", () => {
      c.hit("seq:b");
      return a.n + 1;
    });
    const d = await step.run("c", () => {
      c.hit("seq:c");
      return undefined;
    });
    return { a: a.n, len: a.text.length, b, d: d ?? null, input: event.data["input"] ?? null };
  });

  const flaky = inngest.createFunction({ id: "flaky", triggers: [{ event: "test/flaky" }] }, async ({ step }) => {
    return step.run("flaky-step", () => {
      c.hit("flaky");
      if (c.get("flaky") < 3) throw new Error(`boom ${c.get("flaky")}`);
      return "ok after 3";
    });
  });

  const exhausted = inngest.createFunction(
    { id: "exhausted", retries: 1, triggers: [{ event: "test/exhausted" }] },
    async ({ step }) => {
      try {
        await step.run("always-fails", () => {
          c.hit("exhausted");
          throw new Error("nope");
        });
        return "unreachable";
      } catch (err) {
        return { caught: (err as Error).message };
      }
    },
  );

  const nonRetriable = inngest.createFunction({ id: "non-retriable", triggers: [{ event: "test/non-retriable" }] }, async ({ step }) => {
    await step.run("fatal", () => {
      c.hit("fatal");
      throw new NonRetriableError("fatal problem");
    });
  });

  const failing = inngest.createFunction(
    {
      id: "failing",
      retries: 2,
      triggers: [{ event: "test/failing" }],
      onFailure: async ({ event, error }) => {
        c.hit("onFailure");
        h.failures.push({ data: event.data as Record<string, unknown>, message: error.message });
      },
    },
    async ({ step }) => {
      await step.run("before-throw", () => {
        c.hit("failing:step");
        return 1;
      });
      throw new Error("function-level failure");
    },
  );

  const parallel = inngest.createFunction({ id: "parallel", triggers: [{ event: "test/parallel" }] }, async ({ step }) => {
    const parts = await Promise.all(
      ["x", "y", "z"].map((k) =>
        step.run(`p-${k}`, () => {
          c.hit(`par:${k}`);
          return k.toUpperCase();
        }),
      ),
    );
    return step.run("after", () => {
      c.hit("par:after");
      return parts.join("");
    });
  });

  const sleeper = inngest.createFunction({ id: "sleeper", triggers: [{ event: "test/sleep" }] }, async ({ event, step }) => {
    await step.run("before-sleep", () => c.hit("sleep:before"));
    await step.sleep("nap", "1h");
    await step.run("between", () => c.hit("sleep:between"));
    await step.sleepUntil("until", new Date(String(event.data["until"])));
    return step.run("after-sleep", () => {
      c.hit("sleep:after");
      return "rested";
    });
  });

  const waiter = inngest.createFunction({ id: "waiter", triggers: [{ event: "test/wait.start" }] }, async ({ event, step }) => {
    const id = String(event.data["id"]);
    await step.run("before-wait", async () => {
      c.hit(`wait:before:${id}`);
      if (event.data["hold"]) {
        const l = holdFor(h, id);
        l.arrive();
        await l.promise;
      }
    });
    const got = await step.waitForEvent("approval", {
      event: "test/wait.approval",
      timeout: "24h",
      if: "async.data.id == event.data.id",
    });
    return { got: got ? got.data : null };
  });

  const child = inngest.createFunction({ id: "child", triggers: [{ event: "test/child.direct" }] }, async ({ event, step }) => {
    const v = await step.run("child-step", () => {
      c.hit("child");
      return Number(event.data["n"] ?? 0) * 2;
    });
    if (event.data["fail"]) throw new NonRetriableError("child failed");
    return { doubled: v };
  });

  const parent = inngest.createFunction({ id: "parent", triggers: [{ event: "test/parent" }] }, async ({ step }) => {
    const ok = await step.invoke("call-child", { function: child, data: { n: 21 } });
    let failure: string | null = null;
    try {
      await step.invoke("call-child-fail", { function: child, data: { n: 1, fail: true } });
    } catch (err) {
      failure = (err as Error).message;
    }
    return { ok, failure };
  });

  const sender = inngest.createFunction({ id: "sender", triggers: [{ event: "test/send" }] }, async ({ event, step }) => {
    const res = await step.sendEvent("emit", { name: "test/sent", data: { from: event.data["tag"] } });
    return res.ids.length;
  });

  const receiver = inngest.createFunction({ id: "receiver", triggers: [{ event: "test/sent" }] }, async ({ event, step }) => {
    return step.run("receive", () => {
      c.hit("received");
      return event.data["from"];
    });
  });

  const cancellable = inngest.createFunction(
    {
      id: "cancellable",
      cancelOn: [{ event: "test/cancel", if: "async.data.id == event.data.id" }],
      triggers: [{ event: "test/cancellable" }],
    },
    async ({ event, step }) => {
      await step.run("c-before", () => c.hit(`cancel:before:${event.data["id"]}`));
      await step.sleep("long", "2h");
      await step.run("c-after", () => c.hit(`cancel:after:${event.data["id"]}`));
    },
  );

  const morning = inngest.createFunction({ id: "morning", triggers: [{ cron: "TZ=Europe/Paris 0 9 * * *" }] }, async ({ event, step }) => {
    return step.run("tick", () => {
      c.hit("cron");
      return event.name;
    });
  });

  const filtered = inngest.createFunction(
    { id: "filtered", triggers: [{ event: "test/filtered", if: "event.data.kind == 'b'" }] },
    async ({ event }) => event.data["kind"],
  );

  const limited = inngest.createFunction(
    { id: "limited", concurrency: { limit: 1, key: "event.data.user" }, triggers: [{ event: "test/limited" }] },
    async ({ event, step }) => {
      const user = String(event.data["user"]);
      await step.run("work", async () => {
        const cur = (h.concurrency.current.get(user) ?? 0) + 1;
        h.concurrency.current.set(user, cur);
        h.concurrency.max.set(user, Math.max(h.concurrency.max.get(user) ?? 0, cur));
        await new Promise((r) => setTimeout(r, 40));
        h.concurrency.current.set(user, cur - 1);
      });
      await step.waitForEvent("park", { event: "test/limited.release", timeout: "1h" });
      return step.run("finish", () => user);
    },
  );

  const slow = inngest.createFunction(
    { id: "slow", timeouts: { finish: "1h" }, triggers: [{ event: "test/slow" }] },
    async ({ step }) => {
      await step.run("s1", () => c.hit("slow:1"));
      await step.sleep("wait-2h", "2h");
      await step.run("s2", () => c.hit("slow:2"));
    },
  );

  const dedupe = inngest.createFunction({ id: "dedupe", triggers: [{ event: "test/dedupe" }] }, async ({ event }) => {
    c.hit("dedupe");
    return event.id;
  });

  const retryAfter = inngest.createFunction({ id: "retry-after", triggers: [{ event: "test/retry-after" }] }, async ({ step }) => {
    return step.run("ra", () => {
      c.hit("ra");
      if (c.get("ra") === 1) throw new RetryAfterError("slow down", "10m");
      return "done";
    });
  });

  // checkpointing.maxRuntime of 1 ms: in checkpointing mode the SDK stops running new steps inline after the
  // first and hands the next one back as planned (the runtime-reached path of the execution engine).
  const shortRuntime = inngest.createFunction(
    { id: "short-runtime", checkpointing: { maxRuntime: 1 }, triggers: [{ event: "test/short-runtime" }] },
    async ({ step }) => {
      let total = 0;
      for (const k of ["r1", "r2", "r3"]) {
        total += await step.run(k, async () => {
          c.hit(`short:${k}`);
          await new Promise((r) => setTimeout(r, 5));
          return 1;
        });
      }
      return total;
    },
  );

  return [
    shortRuntime,
    sequential,
    flaky,
    exhausted,
    nonRetriable,
    failing,
    parallel,
    sleeper,
    waiter,
    child,
    parent,
    sender,
    receiver,
    cancellable,
    morning,
    filtered,
    limited,
    slow,
    dedupe,
    retryAfter,
  ];
}
