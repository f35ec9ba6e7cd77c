/**
 * DoRA and LoRA adapters in one server (issue #19): concurrent greedy requests on two DoRA adapters,
 * a LoRA adapter and the base model share the engine's batches, and each answer (text and token
 * logprobs) equals the model that adapter merges to (`lora-ts merge`, DoRA's (m / n) ⊙ (W + s·B·A)),
 * run alone by `lora-ts generate` and `lora-ts logits`. One DoRA adapter is loaded at run time (the
 * session is not rebuilt for it). The model is a random GPT-2: Conv1D weights
 * (the factor scales columns), biases (which the factor must not scale, and one adapter trains them)
 * and a DoRA adapter on the embedding table. A lora_mix with a DoRA adapter is one 400 line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import OpenAI from "openai";
import type { LoraConfig } from "../../src/lora/config.js";
import { mergeModel } from "../../src/lora/merge-model.js";
import { runCli } from "../helpers/cli.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";
import { tinyModel } from "../helpers/tiny-model.js";
import { errorOf, post, type ServerProcess, startServe } from "./server.js";

const PROMPT = [1, 5, 9, 13, 7];
const MAX_TOKENS = 8;
/** float32 forwards of the same weights, merged or not: logprobs agree far below this. */
const TOL = 1e-4;
let work: string;
let model: string;
let server: ServerProcess;
let client: OpenAI;
const dirs: Record<string, string> = {};

before(async () => {
  work = mkdtempSync(join(tmpdir(), "lora-ts-serve-dora-"));
  model = tinyModel("gpt2", 21, { n_positions: 64 });
  const specs: Record<string, { seed: number } & Partial<LoraConfig>> = {
    dora1: { seed: 1, r: 2, use_dora: true, target_modules: ["c_attn", "c_fc", "wte"], bias: "lora_only" },
    dora2: { seed: 2, r: 4, use_dora: true, target_modules: ["c_attn", "c_proj"] },
    lora: { seed: 3, r: 2, target_modules: ["c_attn", "c_proj"] },
  };
  for (const [name, spec] of Object.entries(specs)) {
    dirs[name] = join(work, name);
    writeRandomAdapter(model, dirs[name]!, { lora_alpha: 4, scale: 0.2, ...spec });
  }
  // dora2 is loaded while the server runs (POST /v1/load_lora_adapter), the others at start-up.
  server = await startServe([
    "--model",
    model,
    ...["dora1", "lora"].map((n) => `--adapter=${n}=${dirs[n]}`),
    "--adapter-root",
    work,
    "--max-batch",
    "16",
  ]);
  const load = await post(`${server.url}/v1/load_lora_adapter`, { lora_name: "dora2", lora_path: "dora2" });
  assert.equal(load.status, 200, JSON.stringify(load.body));
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0 });
});

after(async () => {
  if (server) assert.equal(await server.stop(), 0, server.stderr());
  rmSync(work, { recursive: true, force: true });
});

function cliJson<T>(args: string[]): T {
  const r = runCli(args);
  assert.equal(r.code, 0, `lora-ts ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** Greedy ids and their logprobs from a model folder run alone (no server, no adapter). */
function reference(dir: string): { text: string; logprobs: number[] } {
  const g = cliJson<{ ids: number[]; text: string }>([
    "generate",
    "--model",
    dir,
    "--prompt-ids",
    PROMPT.join(","),
    "--max-new-tokens",
    String(MAX_TOKENS),
    "--json",
  ]);
  const all = [...PROMPT, ...g.ids];
  const { logits } = cliJson<{ logits: number[][] }>([
    "logits",
    "--model",
    dir,
    "--ids",
    all.slice(0, -1).join(","),
    "--json",
  ]);
  const logprobs = g.ids.map((id, t) => {
    const row = logits[PROMPT.length - 1 + t]!;
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    return row[id]! - lse;
  });
  return { text: g.text, logprobs };
}

test("serve: DoRA and LoRA adapters and the base in one batch each equal their merged model run alone", async () => {
  const base = basename(model); // the base model's name in requests
  const refs: Record<string, { text: string; logprobs: number[] }> = { [base]: reference(model) };
  for (const name of Object.keys(dirs)) {
    const out = join(work, `merged-${name}`);
    await mergeModel({ model, adapter: dirs[name]!, out, dtype: "f32" });
    refs[name] = reference(out);
  }
  const names = [base, ...Object.keys(dirs)];
  // Three of each at once, some streamed, so the batches mix every adapter with the others.
  const jobs = Array.from({ length: 12 }, async (_, i) => {
    const name = names[i % names.length]!;
    const params = { model: name, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, logprobs: 1 };
    if (i % 3 !== 2) {
      const r = await client.completions.create(params);
      const c = r.choices[0]!;
      return { name, text: c.text, logprobs: c.logprobs!.token_logprobs! };
    }
    let text = "";
    const logprobs: number[] = [];
    for await (const c of await client.completions.create({ ...params, stream: true })) {
      text += c.choices[0]?.text ?? "";
      logprobs.push(...(c.choices[0]?.logprobs?.token_logprobs ?? []));
    }
    return { name, text, logprobs };
  });
  for (const got of await Promise.all(jobs)) {
    const want = refs[got.name]!;
    // The server holds back a trailing incomplete UTF-8 sequence that generate prints as U+FFFD.
    assert.equal(got.text, want.text.replace(/\uFFFD+$/, ""), `${got.name}: text`);
    assert.equal(got.logprobs.length, want.logprobs.length, `${got.name}: tokens`);
    const d = Math.max(...got.logprobs.map((v, t) => Math.abs(v - want.logprobs[t]!)));
    assert.ok(d < TOL, `${got.name}: logprobs differ from the merged model's by ${d}`);
  }
  // Each adapter changes the answer, so the comparisons above can fail.
  for (const name of Object.keys(dirs)) {
    const effect = Math.max(...refs[name]!.logprobs.map((v, t) => Math.abs(v - refs[base]!.logprobs[t]!)));
    assert.ok(effect > 100 * TOL || refs[name]!.text !== refs[base]!.text, `${name} changes nothing`);
  }
});

test("serve: a lora_mix with a DoRA adapter is refused with one line (400), not mixed without its magnitudes", async () => {
  const r = await post(`${server.url}/v1/completions`, {
    model: basename(model),
    prompt: PROMPT,
    max_tokens: 2,
    lora_mix: [
      { name: "lora", weight: 0.5 },
      { name: "dora2", weight: 0.5 },
    ],
  });
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.match(errorOf(r.body).message, /lora_mix: "dora2" is a DoRA adapter/);
});
