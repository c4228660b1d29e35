// Client for the double's HTTP control surface (`/_double/...`), for tests whose double runs in another
// process (end-to-end runs through `next start`). Mirrors the in-process ClaudeDouble methods.
import type { CallRecord } from "./server";
import type { Step } from "./script";

export interface ClaudeDoubleControl {
  script(scenario: string, steps: Step[]): Promise<number>;
  pending(scenario: string): Promise<number>;
  calls(filter?: { scenario?: string; kind?: string; path?: string; status?: number; batch_id?: string; include_body?: boolean }): Promise<CallRecord[]>;
  reset(scenario?: string): Promise<void>;
  advanceClock(ms: number): Promise<number>;
  health(): Promise<boolean>;
}

export function claudeDoubleControl(baseUrl: string): ClaudeDoubleControl {
  const base = baseUrl.replace(/\/+$/, "");
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${base}/_double${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as T & { error?: { message: string } };
    if (!res.ok) throw new Error(`claude double control ${method} ${path} -> ${res.status}: ${json.error?.message ?? ""}`);
    return json;
  }
  return {
    script: async (scenario, steps) => (await call<{ pending: number }>("POST", "/scripts", { scenario, steps })).pending,
    pending: async (scenario) =>
      (await call<{ pending: number }>("GET", `/scripts?scenario=${encodeURIComponent(scenario)}`)).pending,
    calls: async (filter = {}) => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, k === "include_body" ? (v ? "1" : "0") : String(v));
      return (await call<{ data: CallRecord[] }>("GET", `/calls?${q}`)).data;
    },
    reset: async (scenario) => {
      await call("POST", "/reset", scenario === undefined ? {} : { scenario });
    },
    advanceClock: async (ms) => (await call<{ now: number }>("POST", "/clock", { advance_ms: ms })).now,
    health: async () => {
      try {
        return (await call<{ ok: boolean }>("GET", "/health")).ok;
      } catch {
        return false;
      }
    },
  };
}
