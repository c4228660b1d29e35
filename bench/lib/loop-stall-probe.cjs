// Preloaded into a bench's server (`node --require`, see bench/lib/stall-probe.ts): one stderr line for every event-loop
// stall of 30 ms or more, with the wall-clock time it ended, so a latency tail can be told apart from what stalled it.
"use strict";
const TICK_MS = 10;
let last = Date.now();
setInterval(() => {
  const now = Date.now();
  const late = now - last - TICK_MS;
  if (late >= 30) process.stderr.write(`[loop-stall] ${late} ms, ended ${now}\n`);
  last = now;
}, TICK_MS).unref();
