/**
 * A validated request body → what to generate: the prompt's token ids, the engine request's fields,
 * the stop strings and the answer's options. Checks beyond the JSON schema live here, each a 400 (or
 * 404) naming its field:
 * - `model` is the base model's name or a loaded adapter's; `lora_mix` names loaded adapters and
 *   goes with the base model's name;
 * - fields lora-ts does not implement pass only at their default values (NOT_IMPLEMENTED);
 * - `n` (and `best_of`) must be 1; one prompt per request;
 * - `max_tokens` defaults to what the context leaves after the prompt and is lowered to it; a prompt
 *   that leaves no room is refused.
 * Defaults: temperature 1 and top_p 1, as OpenAI's and vLLM's; without a seed, a random one.
 * Extensions (vLLM's names): `top_k`, `ignore_eos`; lora-ts's own: `lora_mix`.
 */
import { randomInt } from "node:crypto";
import { addsBos, type ChatTemplate } from "../data/chat-template.js";
import type { ChatMessage } from "../data/formats.js";
import type { Tokenizer } from "../data/tokenizer.js";
import type { GenRequest, MixPart } from "../infer/engine-types.js";
import { ApiError } from "./errors.js";
import type { ModelInfo } from "./protocol.js";

export const DEFAULT_TEMPERATURE = 1;

type Body = Record<string, unknown>;

/** What a request asks for, ready to submit. */
export interface Plan {
  kind: "completion" | "chat";
  /** The `model` field, echoed in the answer. */
  model: string;
  /** Adapter label for metrics: the adapter's name, "base" or "mix". */
  adapterLabel: string;
  gen: Omit<GenRequest, "id">;
  stops: string[];
  stream: boolean;
  includeUsage: boolean;
  /** Completions: `logprobs: k`; chat: `top_logprobs` when `logprobs: true`; undefined: none. */
  logprobs: number | undefined;
}

export interface PlanContext {
  tokenizer: Tokenizer;
  template: ChatTemplate;
  info: ModelInfo;
  baseName: string;
  /** Loaded adapters' names. */
  adapters: ReadonlySet<string>;
}

const given = (v: unknown) => v !== undefined && v !== null;

const isEmptyObject = (v: unknown) =>
  typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;

/** Fields that change the answer and are not implemented: the values accepted (their defaults). */
const NOT_IMPLEMENTED: Record<string, { ok: (v: unknown) => boolean; allowed: string }> = {
  n: { ok: (v) => v === 1, allowed: "1 (one choice per request)" },
  best_of: { ok: (v) => v === 1, allowed: "1" },
  presence_penalty: { ok: (v) => v === 0, allowed: "0" },
  frequency_penalty: { ok: (v) => v === 0, allowed: "0" },
  logit_bias: { ok: isEmptyObject, allowed: "{}" },
  echo: { ok: (v) => v === false, allowed: "false" },
  suffix: { ok: (v) => v === "", allowed: '""' },
  tools: { ok: (v) => Array.isArray(v) && v.length === 0, allowed: "[] (no tool calling)" },
  functions: { ok: (v) => Array.isArray(v) && v.length === 0, allowed: "[] (no function calling)" },
  tool_choice: { ok: (v) => v === "none" || v === "auto", allowed: '"none" or "auto" without tools' },
  function_call: { ok: (v) => v === "none" || v === "auto", allowed: '"none" or "auto" without functions' },
  parallel_tool_calls: { ok: (v) => typeof v === "boolean", allowed: "true or false (without tools)" },
  response_format: {
    ok: (v) => typeof v === "object" && v !== null && (v as Body)["type"] === "text",
    allowed: '{"type":"text"}',
  },
  modalities: { ok: (v) => Array.isArray(v) && v.length === 1 && v[0] === "text", allowed: '["text"]' },
  audio: { ok: () => false, allowed: "null" },
  prediction: { ok: () => false, allowed: "null" },
  reasoning_effort: { ok: () => false, allowed: "null" },
  web_search_options: { ok: () => false, allowed: "null" },
  verbosity: { ok: () => false, allowed: "null" },
};

function checkNotImplemented(body: Body): void {
  for (const [field, rule] of Object.entries(NOT_IMPLEMENTED)) {
    const v = body[field];
    if (given(v) && !rule.ok(v)) {
      throw new ApiError(
        400,
        `${field}: ${JSON.stringify(v)?.slice(0, 80)} is not supported by this server; only ${rule.allowed}`,
        field,
        "unsupported_value",
      );
    }
  }
}

function modelChoice(
  body: Body,
  ctx: PlanContext,
): { adapter: string | null; mix?: MixPart[]; label: string } {
  const model = body["model"] as string;
  const mix = body["lora_mix"] as MixPart[] | null | undefined;
  if (given(mix)) {
    if (model !== ctx.baseName)
      throw new ApiError(
        400,
        `lora_mix: give the base model's name (${JSON.stringify(ctx.baseName)}) as model with a mix`,
        "model",
      );
    const seen = new Set<string>();
    for (const [i, p] of mix!.entries()) {
      if (seen.has(p.name))
        throw new ApiError(400, `lora_mix[${i}].name: ${JSON.stringify(p.name)} is given twice`, "lora_mix");
      seen.add(p.name);
      if (!ctx.adapters.has(p.name))
        throw new ApiError(
          404,
          `lora_mix[${i}].name: no adapter ${JSON.stringify(p.name)} is loaded`,
          "lora_mix",
          "model_not_found",
        );
    }
    return { adapter: null, mix: mix!.map((p) => ({ name: p.name, weight: p.weight })), label: "mix" };
  }
  if (model === ctx.baseName) return { adapter: null, label: "base" };
  if (ctx.adapters.has(model)) return { adapter: model, label: model };
  throw new ApiError(404, `The model \`${model.slice(0, 100)}\` does not exist.`, "model", "model_not_found");
}

function stopsOf(body: Body): string[] {
  const s = body["stop"];
  if (!given(s)) return [];
  return typeof s === "string" ? [s] : (s as string[]);
}

function checkIds(ids: readonly number[], vocab: number, field: string): void {
  const bad = ids.find((id) => id >= vocab);
  if (bad !== undefined)
    throw new ApiError(400, `${field}: token id ${bad} is outside the vocabulary (${vocab})`, field);
}

/** The prompt's ids of a completions body. */
function completionPrompt(body: Body, ctx: PlanContext): number[] {
  const p = body["prompt"] as string | number[] | string[] | number[][];
  if (typeof p === "string") {
    return ctx.tokenizer.encode(p, { addBos: addsBos(ctx.tokenizer) });
  }
  if (p.length > 0 && typeof p[0] !== "number") {
    if (p.length !== 1)
      throw new ApiError(
        400,
        `prompt: ${p.length} prompts given; this server takes one prompt per request`,
        "prompt",
      );
    const one = p[0]!;
    return typeof one === "string"
      ? ctx.tokenizer.encode(one, { addBos: addsBos(ctx.tokenizer) })
      : (one as number[]);
  }
  return p as number[];
}

/** The chat messages of a body as the template takes them. */
function chatMessages(body: Body): ChatMessage[] {
  const list = body["messages"] as Body[];
  return list.map((m, i) => {
    for (const f of ["name", "tool_calls", "function_call", "audio", "refusal"]) {
      if (given(m[f]) && !(f === "tool_calls" && Array.isArray(m[f]) && (m[f] as unknown[]).length === 0))
        throw new ApiError(400, `messages[${i}].${f}: not supported by this server`, "messages");
    }
    // Text parts are joined with line breaks, as vLLM joins them.
    const c = m["content"] as string | { text: string }[] | null | undefined;
    const content =
      c === null || c === undefined ? "" : typeof c === "string" ? c : c.map((x) => x.text).join("\n");
    if (!given(c) && m["role"] !== "assistant")
      throw new ApiError(400, `messages[${i}].content: required for role ${m["role"]}`, "messages");
    // OpenAI's "developer" role is the system role of newer models; templates know "system".
    const role = m["role"] === "developer" ? "system" : (m["role"] as ChatMessage["role"]);
    return { role, content };
  });
}

function chatPrompt(body: Body, ctx: PlanContext): number[] {
  const text = ctx.template.render(chatMessages(body), true);
  const ids = ctx.tokenizer.encode(text, { addBos: false });
  // BOS as train's tokenizeChat adds it: when the tokenizer wants it and the template did not emit it.
  const bos = ctx.tokenizer.bosId;
  if (addsBos(ctx.tokenizer) && bos !== undefined && ids[0] !== bos) ids.unshift(bos);
  return ids;
}

export function planRequest(kind: Plan["kind"], body: Body, ctx: PlanContext): Plan {
  checkNotImplemented(body);
  const choice = modelChoice(body, ctx);
  let prompt: number[];
  try {
    prompt = kind === "completion" ? completionPrompt(body, ctx) : chatPrompt(body, ctx);
  } catch (e) {
    if (e instanceof ApiError) throw e;
    // A chat template that fails to render (raise_exception) or a tokenizer failure: the input's fault.
    throw new ApiError(
      400,
      `${kind === "chat" ? "messages" : "prompt"}: ${(e as Error).message}`,
      kind === "chat" ? "messages" : "prompt",
    );
  }
  const promptField = kind === "chat" ? "messages" : "prompt";
  if (prompt.length === 0) throw new ApiError(400, `${promptField}: the prompt is empty`, promptField);
  checkIds(prompt, ctx.info.vocabSize, promptField);
  const context = ctx.info.maxPositions;
  const room = context - prompt.length;
  if (room < 1)
    throw new ApiError(
      400,
      `${promptField}: the prompt has ${prompt.length} tokens; the model's context is ${context} tokens, which leaves no room to generate`,
      promptField,
      "context_length_exceeded",
    );
  let requested = body["max_tokens"] as number | null | undefined;
  if (kind === "chat") {
    const mct = body["max_completion_tokens"] as number | null | undefined;
    if (given(mct) && given(requested) && mct !== requested)
      throw new ApiError(
        400,
        "max_completion_tokens: differs from max_tokens; give one of them",
        "max_completion_tokens",
      );
    if (given(mct)) requested = mct;
  }
  const maxTokens = given(requested) ? Math.min(requested!, room) : room;

  let logprobs: number | undefined;
  if (kind === "completion") {
    const lp = body["logprobs"] as number | null | undefined;
    logprobs = given(lp) ? lp! : undefined;
  } else {
    const top = body["top_logprobs"] as number | null | undefined;
    if (body["logprobs"] === true) logprobs = given(top) ? top! : 0;
    else if (given(top)) throw new ApiError(400, "top_logprobs: needs logprobs: true", "top_logprobs");
  }
  const topK = body["top_k"] as number | null | undefined;
  const seed = body["seed"] as number | null | undefined;
  const streamOptions = body["stream_options"] as { include_usage?: boolean | null } | null | undefined;
  const stream = body["stream"] === true;
  if (given(streamOptions) && !stream)
    throw new ApiError(400, "stream_options: only allowed with stream: true", "stream_options");
  return {
    kind,
    model: body["model"] as string,
    adapterLabel: choice.label,
    gen: {
      prompt,
      adapter: choice.adapter,
      ...(choice.mix ? { mix: choice.mix } : {}),
      maxTokens,
      temperature: (body["temperature"] as number | null | undefined) ?? DEFAULT_TEMPERATURE,
      topP: (body["top_p"] as number | null | undefined) ?? 1,
      topK: given(topK) && topK! > 0 ? topK! : 0,
      seed: given(seed) ? seed! : randomInt(0, 2 ** 31),
      stopIds: body["ignore_eos"] === true ? [] : [...ctx.info.eosTokenIds],
      ...(logprobs !== undefined ? { logprobs } : {}),
    },
    stops: stopsOf(body),
    stream,
    includeUsage: streamOptions?.include_usage === true,
    logprobs,
  };
}
