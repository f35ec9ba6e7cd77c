/**
 * JSON schemas of the request bodies, checked by fastify (Ajv) before a handler runs. Every field
 * OpenAI defines for the endpoint is listed, so an OpenAI client's body passes the schema; fields
 * that change the answer and are not implemented pass only at their default (request-params.ts says
 * which), and a field OpenAI does not define is refused (additionalProperties: false), so nothing a
 * user gave is silently dropped. `null` means "not given", as in OpenAI's API.
 */

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: "null" }] });
const anything = {};

const sampling = {
  model: { type: "string", minLength: 1 },
  max_tokens: nullable({ type: "integer", minimum: 1 }),
  temperature: nullable({ type: "number", minimum: 0, maximum: 2 }),
  top_p: nullable({ type: "number", exclusiveMinimum: 0, maximum: 1 }),
  /** vLLM's extension: 0 or -1 = off. */
  top_k: nullable({ type: "integer", minimum: -1 }),
  seed: nullable({ type: "integer" }),
  stop: nullable({
    anyOf: [
      { type: "string", minLength: 1 },
      { type: "array", items: { type: "string", minLength: 1 }, maxItems: 4 },
    ],
  }),
  stream: nullable({ type: "boolean" }),
  stream_options: nullable({
    type: "object",
    properties: { include_usage: nullable({ type: "boolean" }) },
    additionalProperties: false,
  }),
  n: nullable({ type: "integer", minimum: 1 }),
  presence_penalty: nullable({ type: "number", minimum: -2, maximum: 2 }),
  frequency_penalty: nullable({ type: "number", minimum: -2, maximum: 2 }),
  logit_bias: nullable({ type: "object" }),
  user: nullable({ type: "string" }),
  /** vLLM's extension: do not stop at the end-of-sequence token (benchmarks, tests). */
  ignore_eos: nullable({ type: "boolean" }),
  /** The extension: a weighted mix of loaded adapters. */
  lora_mix: nullable({
    type: "array",
    minItems: 1,
    maxItems: 16,
    items: {
      type: "object",
      required: ["name", "weight"],
      properties: { name: { type: "string" }, weight: { type: "number" } },
      additionalProperties: false,
    },
  }),
};

export const completionBody = {
  type: "object",
  required: ["model", "prompt"],
  additionalProperties: false,
  properties: {
    ...sampling,
    prompt: {
      anyOf: [
        { type: "string" },
        { type: "array", items: { type: "integer", minimum: 0 } },
        { type: "array", items: { type: "string" } },
        { type: "array", items: { type: "array", items: { type: "integer", minimum: 0 } } },
      ],
    },
    logprobs: nullable({ type: "integer", minimum: 0, maximum: 20 }),
    best_of: nullable({ type: "integer", minimum: 1 }),
    echo: nullable({ type: "boolean" }),
    suffix: nullable({ type: "string" }),
  },
};

const textPart = {
  type: "object",
  required: ["type", "text"],
  properties: { type: { const: "text" }, text: { type: "string" } },
  additionalProperties: false,
};

const message = {
  type: "object",
  required: ["role"],
  properties: {
    role: { enum: ["system", "developer", "user", "assistant"] },
    content: nullable({ anyOf: [{ type: "string" }, { type: "array", items: textPart }] }),
    name: anything,
    refusal: anything,
    tool_calls: anything,
    function_call: anything,
    audio: anything,
  },
  additionalProperties: false,
};

export const chatBody = {
  type: "object",
  required: ["model", "messages"],
  additionalProperties: false,
  properties: {
    ...sampling,
    messages: { type: "array", minItems: 1, items: message },
    max_completion_tokens: nullable({ type: "integer", minimum: 1 }),
    logprobs: nullable({ type: "boolean" }),
    top_logprobs: nullable({ type: "integer", minimum: 0, maximum: 20 }),
    // OpenAI's fields that lora-ts does not implement: accepted at their defaults only.
    tools: anything,
    tool_choice: anything,
    parallel_tool_calls: anything,
    functions: anything,
    function_call: anything,
    response_format: anything,
    modalities: anything,
    audio: anything,
    prediction: anything,
    reasoning_effort: anything,
    web_search_options: anything,
    verbosity: anything,
    // Platform bookkeeping with no effect on the answer: accepted and ignored.
    store: anything,
    metadata: anything,
    service_tier: anything,
    prompt_cache_key: anything,
    safety_identifier: anything,
  },
};

export const loadAdapterBody = {
  type: "object",
  required: ["lora_name", "lora_path"],
  additionalProperties: false,
  properties: {
    lora_name: { type: "string" },
    lora_path: { type: "string", minLength: 1 },
  },
};

export const unloadAdapterBody = {
  type: "object",
  required: ["lora_name"],
  additionalProperties: false,
  properties: {
    lora_name: { type: "string" },
  },
};
