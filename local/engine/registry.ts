// Function definitions from a sync, checked so that anything the engine would not honour fails the sync with
// a message naming the function and the option — never silently ignored.
import { checkExpression } from "./cel";
import { parseCron } from "./cron";
import { parseDuration } from "./durations";
import { DEFAULT_RETRIES, functionConfigSchema, unsupportedOptions, type FunctionConfig } from "./protocol";

export interface ConcurrencyRule {
  limit: number;
  key?: string;
  scope: "fn" | "env" | "account";
}

export interface FunctionDef {
  id: string;
  appId: string;
  name: string;
  /** The SDK's call URL: <serve>?fnId=<id>&stepId=step */
  url: string;
  maxAttempts: number;
  eventTriggers: { event: string; expression?: string; pattern?: RegExp }[];
  cronTriggers: { cron: string; jitterMs: number }[];
  concurrency: ConcurrencyRule[];
  cancel: { event: string; if?: string; timeoutMs?: number }[];
  startTimeoutMs?: number;
  finishTimeoutMs?: number;
  config: FunctionConfig;
}

const OPTION_HINTS: Record<string, string> = {
  throttle: "throttle",
  rateLimit: "rateLimit",
  debounce: "debounce",
  batchEvents: "batchEvents",
  priority: "priority",
  idempotency: "idempotency",
  singleton: "singleton",
};

/** Validates one registered function; returns the definition or a list of problems. */
export function buildFunction(raw: unknown, appId: string): { def?: FunctionDef; errors: string[] } {
  const errors: string[] = [];
  const idForMsg = typeof raw === "object" && raw && "id" in raw ? String((raw as { id: unknown }).id) : "(no id)";
  const parsed = functionConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    return { errors: [`function "${idForMsg}": invalid configuration (${issues})`] };
  }
  const cfg = parsed.data;
  for (const opt of unsupportedOptions(raw as Record<string, unknown>)) {
    errors.push(
      `function "${cfg.id}" uses \`${OPTION_HINTS[opt] ?? opt}\`, which the local Inngest engine does not implement; ` +
        `remove it or run against the Inngest dev server / Inngest Cloud`,
    );
  }
  const step = cfg.steps["step"];
  if (!step) errors.push(`function "${cfg.id}": no "step" entry in steps`);
  else if (step.runtime.type !== "http") {
    errors.push(`function "${cfg.id}": runtime "${step.runtime.type}" (connect) is not supported; serve over HTTP`);
  }

  const eventTriggers: FunctionDef["eventTriggers"] = [];
  const cronTriggers: FunctionDef["cronTriggers"] = [];
  for (const t of cfg.triggers) {
    if ("cron" in t) {
      try {
        parseCron(t.cron);
      } catch (err) {
        errors.push(`function "${cfg.id}": invalid cron "${t.cron}": ${(err as Error).message}`);
      }
      let jitterMs = 0;
      if (t.jitter) {
        try {
          jitterMs = parseDuration(t.jitter);
        } catch (err) {
          errors.push(`function "${cfg.id}": invalid cron jitter: ${(err as Error).message}`);
        }
      }
      cronTriggers.push({ cron: t.cron, jitterMs });
    } else {
      if (t.expression) {
        try {
          checkExpression(t.expression);
        } catch (err) {
          errors.push(`function "${cfg.id}": invalid trigger expression "${t.expression}": ${(err as Error).message}`);
        }
      }
      const pattern = t.event.includes("*")
        ? new RegExp(`^${t.event.split("*").map(escapeRe).join(".*")}$`)
        : undefined;
      eventTriggers.push({ event: t.event, expression: t.expression, pattern });
    }
  }

  const concurrency: ConcurrencyRule[] = [];
  const rawConc = cfg.concurrency;
  const list = rawConc === undefined ? [] : typeof rawConc === "number" ? [{ limit: rawConc }] : Array.isArray(rawConc) ? rawConc : [rawConc];
  for (const c of list) {
    const rule: ConcurrencyRule = { limit: c.limit, scope: ("scope" in c && c.scope) || "fn" };
    if ("key" in c && c.key) {
      try {
        checkExpression(c.key);
      } catch (err) {
        errors.push(`function "${cfg.id}": invalid concurrency key "${c.key}": ${(err as Error).message}`);
      }
      rule.key = c.key;
    } else if (rule.scope !== "fn") {
      errors.push(`function "${cfg.id}": concurrency with scope "${rule.scope}" needs a key`);
    }
    if (rule.limit > 0) concurrency.push(rule); // 0 means "no limit of its own", as in Inngest
  }

  const cancel: FunctionDef["cancel"] = [];
  for (const c of cfg.cancel ?? []) {
    if (c.if) {
      try {
        checkExpression(c.if);
      } catch (err) {
        errors.push(`function "${cfg.id}": invalid cancelOn if "${c.if}": ${(err as Error).message}`);
      }
    }
    let timeoutMs: number | undefined;
    if (c.timeout) {
      try {
        timeoutMs = parseDuration(c.timeout);
      } catch (err) {
        errors.push(`function "${cfg.id}": invalid cancelOn timeout: ${(err as Error).message}`);
      }
    }
    cancel.push({ event: c.event, if: c.if, timeoutMs });
  }

  let startTimeoutMs: number | undefined;
  let finishTimeoutMs: number | undefined;
  try {
    if (cfg.timeouts?.start) startTimeoutMs = parseDuration(cfg.timeouts.start);
    if (cfg.timeouts?.finish) finishTimeoutMs = parseDuration(cfg.timeouts.finish);
  } catch (err) {
    errors.push(`function "${cfg.id}": invalid timeouts: ${(err as Error).message}`);
  }

  if (errors.length || !step) return { errors };
  return {
    errors,
    def: {
      id: cfg.id,
      appId,
      name: cfg.name ?? cfg.id,
      url: step.runtime.url,
      maxAttempts: (step.retries?.attempts ?? DEFAULT_RETRIES) + 1,
      eventTriggers,
      cronTriggers,
      concurrency,
      cancel,
      startTimeoutMs,
      finishTimeoutMs,
      config: cfg,
    },
  };
}

export function triggerMatches(t: FunctionDef["eventTriggers"][number], name: string): boolean {
  return t.pattern ? t.pattern.test(name) : t.event === name;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
