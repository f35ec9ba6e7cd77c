/**
 * OpenAI's wire format for the answers: completion and chat completion objects, their streaming
 * chunks, usage, and both logprobs shapes (completions: `{tokens, token_logprobs, top_logprobs,
 * text_offset}`; chat: `{content: [{token, logprob, bytes, top_logprobs}]}`). Only shapes here: no
 * engine, no HTTP.
 */
import { randomBytes } from "node:crypto";
import type { FinishReason, TokenEvent } from "../infer/engine-types.js";

export type WireFinish = "stop" | "length";

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** "cancelled" never reaches a client that is still there; report it as "stop" if it does. */
export function wireFinish(f: FinishReason): WireFinish {
  return f === "length" ? "length" : "stop";
}

export function newId(prefix: "cmpl" | "chatcmpl"): string {
  return `${prefix}-${randomBytes(12).toString("hex")}`;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** How token ids become strings and bytes for logprobs. */
export interface TokenText {
  /** The token's text as the client sees it (may hold U+FFFD for part of a character). */
  text(id: number): string;
  /** The token's UTF-8 bytes, when known (a part of a multi-byte character is only these). */
  bytes(id: number): number[];
}

/** One generated token with where its text begins in the answer. */
export interface EmittedToken {
  event: TokenEvent;
  offset: number;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** The completions `logprobs` object of some tokens. */
export function completionLogprobs(tokens: readonly EmittedToken[], tt: TokenText): CompletionLogprobs {
  return {
    tokens: tokens.map((t) => tt.text(t.event.id)),
    token_logprobs: tokens.map((t) => t.event.logprob ?? 0),
    top_logprobs: tokens.map((t) => {
      const o: Record<string, number> = {};
      // Two ids can decode to the same string; the first (most likely) one keeps it, as in vLLM.
      for (const x of t.event.top ?? []) {
        const s = tt.text(x.id);
        if (!(s in o)) o[s] = x.logprob;
      }
      return o;
    }),
    text_offset: tokens.map((t) => t.offset),
  };
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/** The chat `logprobs` object of some tokens (`topN` alternatives each). */
export function chatLogprobs(
  tokens: readonly EmittedToken[],
  tt: TokenText,
  topN: number,
): { content: ChatTokenLogprob[] } {
  return {
    content: tokens.map((t) => ({
      token: tt.text(t.event.id),
      logprob: t.event.logprob ?? 0,
      bytes: tt.bytes(t.event.id),
      top_logprobs: (t.event.top ?? []).slice(0, topN).map((x) => ({
        token: tt.text(x.id),
        logprob: x.logprob,
        bytes: tt.bytes(x.id),
      })),
    })),
  };
}

export interface Head {
  id: string;
  created: number;
  model: string;
}

export function completion(
  head: Head,
  text: string,
  finish: WireFinish,
  logprobs: CompletionLogprobs | null,
  u: Usage,
) {
  return {
    ...head,
    object: "text_completion" as const,
    choices: [{ index: 0, text, logprobs, finish_reason: finish }],
    usage: u,
    system_fingerprint: null,
  };
}

/** A streamed completions chunk; `usage` is null on each chunk when the client asked for usage. */
export function completionChunk(
  head: Head,
  text: string,
  finish: WireFinish | null,
  logprobs: CompletionLogprobs | null,
  withUsage: boolean,
) {
  return {
    ...head,
    object: "text_completion" as const,
    choices: [{ index: 0, text, logprobs, finish_reason: finish }],
    ...(withUsage ? { usage: null } : {}),
  };
}

export function chatCompletion(
  head: Head,
  content: string,
  finish: WireFinish,
  logprobs: { content: ChatTokenLogprob[] } | null,
  u: Usage,
) {
  return {
    ...head,
    object: "chat.completion" as const,
    choices: [
      {
        index: 0,
        message: { role: "assistant" as const, content, refusal: null },
        logprobs,
        finish_reason: finish,
      },
    ],
    usage: u,
    system_fingerprint: null,
  };
}

export function chatChunk(
  head: Head,
  delta: { role?: "assistant"; content?: string },
  finish: WireFinish | null,
  logprobs: { content: ChatTokenLogprob[] } | null,
  withUsage: boolean,
) {
  return {
    ...head,
    object: "chat.completion.chunk" as const,
    choices: [{ index: 0, delta, logprobs, finish_reason: finish }],
    ...(withUsage ? { usage: null } : {}),
    system_fingerprint: null,
  };
}

/** The last chunk of a stream with `stream_options.include_usage`: no choices, the usage. */
export function usageChunk(head: Head, object: "text_completion" | "chat.completion.chunk", u: Usage) {
  return { ...head, object, choices: [], usage: u };
}

/** One server-sent event. */
export const sse = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;
export const SSE_DONE = "data: [DONE]\n\n";
