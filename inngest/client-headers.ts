// The SDK computes the client's headers (`Inngest#headers`: SDK version, environment name, platform) on every API
// request — with checkpointing, once per step — and each time reads the whole process environment
// (`inngestHeaders` → `getProcessEnv`, which walks every variable of `process.env` and checks it against its list).
// On this machine that is ~0.13 ms of CPU per step with 35 variables, and it grows with the environment (Vercel's
// is larger). The result cannot change in practice: the client took its snapshot of the same variables when it
// was built, and that snapshot wins over the fresh read (`{ ...getProcessEnv(), ...this._env }`), so only a
// variable first set after the client was built — never done here — could change it. So it is computed once.
// No option of the SDK turns the read off (checked against inngest 4.24.0, helpers/env.js and
// components/Inngest.js); if a later SDK drops the getter, this leaves the client as it is.
export function withStableHeaders<T extends object>(client: T): T {
  const getter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(client), "headers")?.get;
  if (!getter) return client;
  let cached: Record<string, string> | undefined;
  Object.defineProperty(client, "headers", {
    configurable: true,
    enumerable: false,
    // A copy per read, as the SDK's getter returns a fresh object each time: a caller may add to it.
    get: () => ({ ...(cached ??= getter.call(client) as Record<string, string>) }),
  });
  return client;
}
