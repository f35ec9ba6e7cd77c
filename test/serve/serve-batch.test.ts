/**
 * Issue #14's main check: 64 concurrent greedy requests spread over 8 adapters and the base model,
 * streamed and not, mixed in the engine's batches. Each answer must equal the same request sent
 * alone, and `lora-ts generate` with that adapter; chat answers equal their solo run too.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { BIN } from "../helpers/cli.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { type ServerProcess, startServe } from "./server.js";

const MODEL = DEFAULT_MODEL_DIR;
const NAMES = ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"];
const PROMPTS = ["Once upon a time", "The little dog"];
const MAX_TOKENS = 12;
let work: string;
let server: ServerProcess;
let client: OpenAI;
const dirs: Record<string, string> = {};

before(async () => {
  work = mkdtempSync(join(tmpdir(), "lora-ts-serve-batch-"));
  // Different seeds, ranks and targets, so every adapter answers differently.
  const targets = [
    ["q_proj", "v_proj"],
    ["q_proj", "k_proj", "v_proj", "o_proj"],
    ["gate_proj", "up_proj", "down_proj"],
  ];
  NAMES.forEach((name, i) => {
    dirs[name] = join(work, name);
    writeRandomAdapter(MODEL, dirs[name]!, {
      seed: 100 + i,
      r: 2 + (i % 3) * 2,
      lora_alpha: 8,
      target_modules: targets[i % 3]!,
      scale: 0.08,
    });
  });
  server = await startServe([
    "--model",
    MODEL,
    ...NAMES.map((n) => `--adapter=${n}=${dirs[n]}`),
    "--max-batch",
    "16",
  ]);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, server.stderr());
  rmSync(work, { recursive: true, force: true });
});

const MODELS = ["default", ...NAMES];

async function complete(
  model: string,
  prompt: string,
  stream: boolean,
): Promise<{ text: string; finish: string }> {
  const params = { model, prompt, max_tokens: MAX_TOKENS, temperature: 0 };
  if (!stream) {
    const r = await client.completions.create(params);
    assert.equal(r.object, "text_completion");
    assert.equal(r.model, model);
    assert.match(r.id, /^cmpl-/);
    assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= MAX_TOKENS);
    assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
    return { text: r.choices[0]!.text, finish: r.choices[0]!.finish_reason };
  }
  const s = await client.completions.create({ ...params, stream: true });
  let text = "";
  let finish = "";
  for await (const c of s) {
    assert.equal(c.model, model);
    text += c.choices[0]?.text ?? "";
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
  }
  return { text, finish };
}

async function chat(model: string, content: string, stream: boolean): Promise<string> {
  const params = {
    model,
    messages: [{ role: "user" as const, content }],
    max_tokens: MAX_TOKENS,
    temperature: 0,
  };
  if (!stream) {
    const r = await client.chat.completions.create(params);
    assert.equal(r.object, "chat.completion");
    assert.equal(r.choices[0]!.message.role, "assistant");
    return r.choices[0]!.message.content ?? "";
  }
  const s = await client.chat.completions.create({ ...params, stream: true });
  let text = "";
  for await (const c of s) text += c.choices[0]?.delta?.content ?? "";
  return text;
}

/** `lora-ts generate --json` with every adapter loaded and `--use`, as a user would run it. */
function generateCli(model: string, prompt: string): Promise<string> {
  const args = [
    BIN,
    "generate",
    "--model",
    MODEL,
    "--prompt",
    prompt,
    "--max-new-tokens",
    String(MAX_TOKENS),
    "--json",
  ];
  if (model !== "default") args.push("--adapter", `${model}=${dirs[model]}`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.on("exit", (code) =>
      code === 0 ? resolve((JSON.parse(out) as { text: string }).text) : reject(new Error(err)),
    );
  });
}

test("serve: 64 concurrent greedy requests over 8 adapters and the base equal each one alone and lora-ts generate", async () => {
  const cases = Array.from({ length: 64 }, (_, i) => ({
    model: MODELS[i % MODELS.length]!,
    prompt: PROMPTS[Math.floor(i / MODELS.length) % PROMPTS.length]!,
    stream: i % 2 === 1,
  }));
  const together = await Promise.all(cases.map((c) => complete(c.model, c.prompt, c.stream)));
  // The same requests one at a time (a batch of one).
  const alone = new Map<string, { text: string; finish: string }>();
  for (const c of cases) {
    const key = `${c.model}\u0000${c.prompt}`;
    if (!alone.has(key)) alone.set(key, await complete(c.model, c.prompt, false));
  }
  cases.forEach((c, i) => {
    assert.deepEqual(
      together[i],
      alone.get(`${c.model}\u0000${c.prompt}`),
      `${c.model} / ${c.prompt} / stream ${c.stream}`,
    );
  });
  // The adapters do change the answers (else nothing could cross between them unnoticed).
  const distinct = new Set(MODELS.map((m) => alone.get(`${m}\u0000${PROMPTS[0]}`)!.text));
  assert.ok(distinct.size >= 6, `only ${distinct.size} distinct answers over ${MODELS.length} models`);
  // And the command line agrees, two processes at a time.
  const keys = [...alone.keys()];
  for (let i = 0; i < keys.length; i += 2) {
    const batch = keys.slice(i, i + 2).map((k) => k.split("\u0000") as [string, string]);
    const texts = await Promise.all(batch.map(([m, p]) => generateCli(m, p)));
    for (const [j, [m, p]] of batch.entries())
      assert.equal(alone.get(`${m}\u0000${p}`)!.text, texts[j], `generate ${m} / ${p}`);
  }
});

test("serve: concurrent chat requests (streamed or not) equal the same request alone", async () => {
  const cases = MODELS.flatMap((m, i) => [
    { model: m, content: `Tell me about cat number ${i}`, stream: true },
    { model: m, content: `Tell me about cat number ${i}`, stream: false },
  ]);
  const together = await Promise.all(cases.map((c) => chat(c.model, c.content, c.stream)));
  for (const [i, c] of cases.entries()) {
    if (c.stream) continue;
    const solo = await chat(c.model, c.content, false);
    assert.equal(together[i], solo, `${c.model} non-stream`);
    assert.equal(together[i - 1], solo, `${c.model} stream`);
    assert.ok(solo.length > 0);
  }
});
