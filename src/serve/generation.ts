/**
 * Runs one planned request on the engine and answers it, streaming (SSE) or not.
 *
 * - Text comes out through a TextStream (incremental detokenization, stop strings); when a stop
 *   string ends the text, the engine request is cancelled and later tokens are ignored.
 * - usage.completion_tokens counts the tokens consumed up to the end of the answer (those the engine
 *   produced after a stop string, before the cancel took effect, are not counted).
 * - A streamed answer's headers go out with its first token, so a refusal that comes before it (a
 *   full queue: 429 with Retry-After; an unknown adapter: 404) is still a plain error response.
 *   An error after that ends the stream with an error event and [DONE].
 * - A client that goes away (the response's 'close' before it ended) cancels its request.
 */
import type { FastifyReply } from "fastify";
import type { GenResult, TokenEvent } from "../infer/engine-types.js";
import { toApiError } from "./errors.js";
import {
  chatChunk,
  chatCompletion,
  chatLogprobs,
  completion,
  completionChunk,
  completionLogprobs,
  type EmittedToken,
  type Head,
  newId,
  nowSeconds,
  SSE_DONE,
  sse,
  usage,
  usageChunk,
  type WireFinish,
  wireFinish,
} from "./openai-format.js";
import type { Plan } from "./request-params.js";
import type { ServeState } from "./state.js";
import { type Piece, TextStream } from "./text-stream.js";

export type GenerationContext = Pick<ServeState, "engine" | "metrics" | "decode" | "tokenText" | "track">;

const toEmitted = (p: Piece<TokenEvent>): EmittedToken[] =>
  p.tokens.map((t) => ({ event: t.token, offset: t.offset }));

/**
 * Answers `plan`; resolves when the answer has ended (sent, failed, or the client left), with the
 * body to send for a non-streamed answer. Counted as in flight (ctx.track) all along.
 */
export function runGeneration(
  ctx: GenerationContext,
  plan: Plan,
  reply: FastifyReply,
  arrived: number,
): Promise<unknown> {
  const head: Head = {
    id: newId(plan.kind === "chat" ? "chatcmpl" : "cmpl"),
    created: nowSeconds(),
    model: plan.model,
  };
  return ctx.track(head.id, () => generate(ctx, plan, reply, arrived, head));
}

async function generate(
  ctx: GenerationContext,
  plan: Plan,
  reply: FastifyReply,
  arrived: number,
  head: Head,
): Promise<unknown> {
  const chat = plan.kind === "chat";
  const endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  const text = new TextStream<TokenEvent>(ctx.decode, plan.stops);
  const raw = reply.raw;
  let count = 0;
  let lastTokenAt = 0;
  let gone = false;
  let streaming = false;
  const collected: EmittedToken[] = [];

  ctx.metrics.adapterRequests.inc({ adapter: plan.adapterLabel });
  ctx.metrics.promptTokens.inc(plan.gen.prompt.length);

  const logprobsOf = (tokens: EmittedToken[]) => {
    if (plan.logprobs === undefined) return null;
    return chat
      ? chatLogprobs(tokens, ctx.tokenText, plan.logprobs)
      : completionLogprobs(tokens, ctx.tokenText);
  };
  const chunk = (piece: Piece<TokenEvent>, finish: WireFinish | null) => {
    const lp = logprobsOf(toEmitted(piece));
    return chat
      ? chatChunk(
          head,
          finish === null || piece.text !== "" ? { content: piece.text } : {},
          finish,
          lp as never,
          plan.includeUsage,
        )
      : completionChunk(head, piece.text, finish, lp as never, plan.includeUsage);
  };
  const write = (s: string) => {
    if (!gone) raw.write(s);
  };
  const startStream = () => {
    streaming = true;
    reply.hijack();
    raw.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    if (chat) write(sse(chatChunk(head, { role: "assistant", content: "" }, null, null, plan.includeUsage)));
  };

  const onToken = (ev: TokenEvent) => {
    if (gone || text.stopped) return;
    const now = performance.now();
    if (count === 0) ctx.metrics.timeToFirstToken.observe((now - arrived) / 1000);
    else ctx.metrics.interTokenLatency.observe((now - lastTokenAt) / 1000);
    lastTokenAt = now;
    count++;
    const piece = text.push(ev.id, ev);
    if (text.stopped) ctx.engine.cancel(head.id);
    if (plan.stream) {
      if (!streaming) startStream();
      if (piece.text !== "" || (plan.logprobs !== undefined && piece.tokens.length > 0))
        write(sse(chunk(piece, null)));
    } else {
      collected.push(...toEmitted(piece));
    }
  };

  raw.on("close", () => {
    if (!raw.writableEnded) {
      gone = true;
      ctx.engine.cancel(head.id);
    }
  });

  let result: GenResult;
  try {
    result = await ctx.engine.submit({ ...plan.gen, id: head.id }, onToken);
  } catch (e) {
    const err = toApiError(e, plan.gen.mix ? "lora_mix" : "model");
    if (!streaming) throw err;
    write(sse(err.body()));
    write(SSE_DONE);
    raw.end();
    return undefined;
  } finally {
    ctx.metrics.generatedTokens.inc(count);
  }
  if (result.finish === "cancelled")
    ctx.metrics.cancelled.inc({ reason: gone ? "client_gone" : text.stopped ? "stop_string" : "shutdown" });
  const finish: WireFinish = text.stopped ? "stop" : wireFinish(result.finish);
  const last = text.finish();
  const u = usage(plan.gen.prompt.length, count);
  ctx.metrics.requestLatency.observe({ endpoint }, (performance.now() - arrived) / 1000);
  if (gone) {
    // Nobody to answer: tell fastify the reply is handled.
    if (!streaming) reply.hijack();
    return undefined;
  }
  if (plan.stream) {
    if (!streaming) startStream();
    write(sse(chunk(last, finish)));
    if (plan.includeUsage)
      write(sse(usageChunk(head, chat ? "chat.completion.chunk" : "text_completion", u)));
    write(SSE_DONE);
    raw.end();
    return undefined;
  }
  collected.push(...toEmitted(last));
  const lp = logprobsOf(collected);
  return chat
    ? chatCompletion(head, text.finalText, finish, lp as never, u)
    : completion(head, text.finalText, finish, lp as never, u);
}
