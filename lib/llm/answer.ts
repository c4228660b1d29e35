// A model answer is checked before anything is done with it. The SDK hands back whatever a 200 carried: JSON of any
// shape (or, without a JSON content type, a string). An answer without a content list or with usage figures that are
// not counts would otherwise fail deep inside the bookkeeping ("Cannot read properties of undefined"), filed as our
// bug after its reservation was left hanging, or — with negative or fractional counts — be priced and settled as a
// nonsense amount. Refused here, inside the call's try, it is what it is: a corrupted answer (lib/failures.ts
// answer_corrupted), most likely billed (charged as an estimate like any answer that could not be read), retried.
import type Anthropic from "@anthropic-ai/sdk";
import { z } from "zod";

// The ledger stores token counts as Postgres integers.
const count = z.number().int().min(0).max(2_147_483_647);

const AnswerShape = z.looseObject({
  content: z.array(z.looseObject({ type: z.string() })),
  usage: z.looseObject({
    input_tokens: count,
    output_tokens: count,
    cache_creation_input_tokens: count.nullish(),
    cache_read_input_tokens: count.nullish(),
    server_tool_use: z.looseObject({ web_search_requests: count.nullish() }).nullish(),
  }),
});

export class MalformedAnswerError extends Error {
  override name = "MalformedAnswerError";
}

/** The answer as a Message, or a MalformedAnswerError naming the first field that is wrong (never the body). */
export function wellFormedMessage(data: unknown): Anthropic.Message {
  const r = AnswerShape.safeParse(data);
  if (r.success) return data as Anthropic.Message;
  const issue = r.error.issues[0];
  const where = issue?.path.length ? issue.path.join(".") : "the body";
  throw new MalformedAnswerError(`Claude API answer corrupted: ${where} is missing or malformed`);
}
