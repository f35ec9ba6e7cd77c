/**
 * request-params.ts on the default model's tokenizer: the prompt ids (chat rendered and given BOS as
 * train renders chat data), the defaults, the context cap, the extensions, and the 400s/404s.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { addsBos, ChatTemplate, tokenizeSegments } from "../../src/data/chat-template.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { ApiError } from "../../src/serve/errors.js";
import { DEFAULT_TEMPERATURE, type PlanContext, planRequest } from "../../src/serve/request-params.js";

const tok = readTokenizer(DEFAULT_MODEL_DIR);
const ctx: PlanContext = {
  tokenizer: tok,
  template: ChatTemplate.forTokenizer(tok),
  info: { maxPositions: 256, eosTokenIds: [0], vocabSize: tok.vocabSize },
  baseName: "default",
  adapters: new Set(["a1", "a2"]),
};

const refused = (kind: "completion" | "chat", body: Record<string, unknown>): ApiError => {
  try {
    planRequest(kind, body, ctx);
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    return e;
  }
  throw new Error(`accepted: ${JSON.stringify(body)}`);
};

test("request params: completions defaults, the context cap and the model choice", () => {
  const p = planRequest("completion", { model: "default", prompt: "Once upon a time" }, ctx);
  assert.deepEqual(p.gen.prompt, tok.encode("Once upon a time", { addBos: addsBos(tok) }));
  assert.equal(p.gen.prompt[0], tok.bosId, "the default model's tokenizer adds BOS");
  assert.equal(p.gen.temperature, DEFAULT_TEMPERATURE);
  assert.equal(p.gen.topP, 1);
  assert.equal(p.gen.maxTokens, 256 - p.gen.prompt.length, "default: the rest of the context");
  assert.deepEqual(p.gen.stopIds, [0]);
  assert.equal(p.gen.adapter, null);
  assert.equal(p.adapterLabel, "base");
  assert.ok(Number.isInteger(p.gen.seed));
  assert.equal(p.logprobs, undefined);

  const q = planRequest(
    "completion",
    {
      model: "a2",
      prompt: [5, 6, 7],
      max_tokens: 1000,
      seed: 7,
      top_k: 3,
      ignore_eos: true,
      stop: "x",
      logprobs: 2,
    },
    ctx,
  );
  assert.deepEqual(q.gen.prompt, [5, 6, 7], "token ids are used as given");
  assert.equal(q.gen.maxTokens, 253, "lowered to what the context leaves");
  assert.equal(q.gen.adapter, "a2");
  assert.equal(q.gen.seed, 7);
  assert.equal(q.gen.topK, 3);
  assert.deepEqual(q.gen.stopIds, []);
  assert.deepEqual(q.stops, ["x"]);
  assert.equal(q.gen.logprobs, 2);

  const m = planRequest(
    "completion",
    {
      model: "default",
      prompt: "x",
      lora_mix: [
        { name: "a1", weight: 0.7 },
        { name: "a2", weight: -0.3 },
      ],
    },
    ctx,
  );
  assert.deepEqual(m.gen.mix, [
    { name: "a1", weight: 0.7 },
    { name: "a2", weight: -0.3 },
  ]);
  assert.equal(m.adapterLabel, "mix");
});

test("request params: chat renders the template and adds BOS as train does", () => {
  const messages = [
    { role: "system", content: "Be brief." },
    {
      role: "user",
      content: [
        { type: "text", text: "Hi" },
        { type: "text", text: "there" },
      ],
    },
  ];
  const p = planRequest(
    "chat",
    { model: "a1", messages, max_completion_tokens: 5, logprobs: true, top_logprobs: 2 },
    ctx,
  );
  const text = ctx.template.render(
    [
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi\nthere" },
    ],
    true,
  );
  const want = tokenizeSegments(tok, [{ text, train: false }], { addBos: addsBos(tok) }).inputIds;
  assert.deepEqual(p.gen.prompt, want);
  assert.equal(p.gen.maxTokens, 5);
  assert.equal(p.logprobs, 2);
  const dev = planRequest(
    "chat",
    { model: "a1", messages: [{ role: "developer", content: "Be brief." }] },
    ctx,
  );
  const sys = planRequest("chat", { model: "a1", messages: [{ role: "system", content: "Be brief." }] }, ctx);
  assert.deepEqual(dev.gen.prompt, sys.gen.prompt, "developer is the system role");
});

test("request params: what is not supported is refused, naming the field", () => {
  const cases: ["completion" | "chat", Record<string, unknown>, number, string][] = [
    ["completion", { model: "nope", prompt: "x" }, 404, "model"],
    ["completion", { model: "default", prompt: "x", n: 3 }, 400, "n"],
    ["completion", { model: "default", prompt: "x", best_of: 2 }, 400, "best_of"],
    ["completion", { model: "default", prompt: "x", echo: true }, 400, "echo"],
    ["completion", { model: "default", prompt: "x", suffix: "y" }, 400, "suffix"],
    ["completion", { model: "default", prompt: "x", frequency_penalty: 1 }, 400, "frequency_penalty"],
    ["completion", { model: "default", prompt: "x", logit_bias: { "5": 1 } }, 400, "logit_bias"],
    ["completion", { model: "default", prompt: [[1], [2]] }, 400, "prompt"],
    ["completion", { model: "default", prompt: [] }, 400, "prompt"],
    ["completion", { model: "default", prompt: new Array(256).fill(1) }, 400, "prompt"],
    [
      "completion",
      { model: "default", prompt: "x", stream_options: { include_usage: true } },
      400,
      "stream_options",
    ],
    [
      "completion",
      {
        model: "default",
        prompt: "x",
        lora_mix: [
          { name: "a1", weight: 1 },
          { name: "a1", weight: 1 },
        ],
      },
      400,
      "lora_mix",
    ],
    ["chat", { model: "default", messages: [{ role: "user", content: "x", name: "bob" }] }, 400, "messages"],
    ["chat", { model: "default", messages: [{ role: "user", content: null }] }, 400, "messages"],
    [
      "chat",
      {
        model: "default",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 3,
        max_completion_tokens: 4,
      },
      400,
      "max_completion_tokens",
    ],
    [
      "chat",
      {
        model: "default",
        messages: [{ role: "user", content: "x" }],
        response_format: { type: "json_object" },
      },
      400,
      "response_format",
    ],
    [
      "chat",
      { model: "default", messages: [{ role: "user", content: "x" }], reasoning_effort: "high" },
      400,
      "reasoning_effort",
    ],
  ];
  for (const [kind, body, status, param] of cases) {
    const e = refused(kind, body);
    assert.equal(e.status, status, JSON.stringify(body));
    assert.equal(e.param, param, JSON.stringify(body));
    assert.ok(e.message.startsWith(param) || status === 404, e.message);
  }
  // Defaults of unimplemented fields pass, as do fields with no effect on the answer.
  planRequest(
    "chat",
    {
      model: "default",
      messages: [{ role: "user", content: "x" }],
      n: 1,
      tools: [],
      tool_choice: "none",
      response_format: { type: "text" },
      user: "u",
      store: false,
      metadata: { a: "b" },
    },
    ctx,
  );
});
