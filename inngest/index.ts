// Every Inngest function the app serves.
import { runTask } from "./functions/run-task";

export const functions = [runTask];
