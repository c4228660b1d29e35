// Which way one model call goes: directly, or through the Message Batches API (half price; most batches end within
// an hour, every batch within 24 h). The task's mode decides, and for mode "auto" its deadline:
//
//   now    every call directly
//   batch  every call through a batch
//   auto   a call goes through a batch when the task has no deadline, or when the deadline is at least
//          NIGHTSHIFT_BATCH_ROOM_S (default 3600: a typical batch) after the call would be sent; directly otherwise.
//          Decided per call, so a long task submitted with a morning deadline runs its calls in batches overnight
//          and its last ones directly once the deadline comes close.
//
// A batch already submitted is waited for (Anthropic ends it within 24 h): whoever needs the deadline to hold even
// then sets NIGHTSHIFT_BATCH_ROOM_S=86400. `now` must come from memoized step data (it picks the step ids of the turn).
import type { TaskMode } from "@/lib/tasks/schema";

export type CallWay = "direct" | "batch";

export function callWay(task: { mode: TaskMode; deadline: string | null }, now: number, roomSeconds: number): CallWay {
  if (task.mode === "now") return "direct";
  if (task.mode === "batch") return "batch";
  if (task.deadline === null) return "batch";
  const deadline = Date.parse(task.deadline);
  if (!Number.isFinite(deadline)) return "direct";
  return deadline - now >= roomSeconds * 1000 ? "batch" : "direct";
}
