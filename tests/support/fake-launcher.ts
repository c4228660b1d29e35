// A stand-in for `npm run dev` in the orphan test: starts a detached child (as the launcher starts `next dev`),
// records it in the data directory the way local/dev.ts does, says "ready", and waits to be killed.
import { spawn } from "node:child_process";
import { recordProcess } from "../../local/dev-processes";

const dataDir = process.argv[2]!;
const child = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
await recordProcess(dataDir, "next dev", child.pid!, true);
console.log(JSON.stringify({ ready: true, child: child.pid }));
setInterval(() => {}, 1 << 30);
