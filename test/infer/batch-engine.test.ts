/**
 * The batching engine against plain `generate`: every request's greedy answer must equal the same
 * prompt generated alone by CausalLM with the same adapter, however the batch was mixed.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { BatchEngine } from "../../src/infer/batch-engine.js";
import type { EngineError, GenRequest } from "../../src/infer/engine-types.js";
import { generate } from "../../src/infer/generate.js";
import { loadCausalLM } from "../../src/infer/load-causal-lm.js";
import { loadAdapter, saveAdapter } from "../../src/lora/adapter-files.js";
import { combineAdapters } from "../../src/lora/merge.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { writeRandomModel } from "../../src/models/random-init.js";
import { writeRandomAdapter } from "../helpers/random-adapter.js";

const MODEL = DEFAULT_MODEL_DIR;
let work: string;
const dirs: Record<string, string> = {};

before(() => {
  work = mkdtempSync(join(tmpdir(), "lora-ts-engine-"));
  // Different targets, ranks and scalings, so that padding and stacking are exercised.
  const specs = {
    qv: { seed: 1, r: 4, lora_alpha: 8, target_modules: ["q_proj", "v_proj"] },
    all: {
      seed: 2,
      r: 8,
      lora_alpha: 16,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    },
    mlp: { seed: 3, r: 2, lora_alpha: 2, use_rslora: true, target_modules: ["gate_proj", "down_proj"] },
  } as const;
  for (const [name, s] of Object.entries(specs)) {
    dirs[name] = join(work, name);
    writeRandomAdapter(MODEL, dirs[name]!, { ...s, target_modules: s.target_modules as never });
  }
});
after(() => rmSync(work, { recursive: true, force: true }));

const PROMPTS = [
  [0, 5, 9, 17, 33],
  [0, 100, 200],
  [0, 7, 7, 7, 7, 7, 7, 7, 7, 42, 99, 3],
  [0, 1500],
];

function request(id: string, prompt: number[], adapter: string | null, maxTokens = 12): GenRequest {
  return { id, prompt, adapter, maxTokens, temperature: 0, topP: 1, stopIds: [] };
}

/** Greedy ids of `prompt` from plain generate with the adapter folder (or the base). */
async function alone(dir: string | null, prompt: number[], n: number): Promise<number[]> {
  const lm = await loadCausalLM(MODEL, dir ? { adapters: [{ name: "a", dir }] } : {});
  try {
    const [ids] = await generate(lm, [prompt], {
      maxNewTokens: n,
      eosIds: [],
      extraFeeds: lm.adapterFeeds(dir ? "a" : null),
    });
    return ids!;
  } finally {
    await lm.release();
  }
}

test("mixed batches of adapters and the base give each request's solo generate answer", async () => {
  const engine = await BatchEngine.create(
    MODEL,
    Object.entries(dirs).map(([name, dir]) => ({ name, dir })),
    { maxBatch: 5 },
  );
  try {
    const names = [null, "qv", "all", "mlp"] as const;
    const jobs: { name: string | null; prompt: number[]; n: number }[] = [];
    for (const [i, name] of names.entries())
      for (const [j, prompt] of PROMPTS.entries()) jobs.push({ name, prompt, n: 6 + ((i + j) % 4) * 3 });
    const streamed = new Map<string, number[]>();
    const results = await Promise.all(
      jobs.map((j, k) => {
        const id = `r${k}`;
        streamed.set(id, []);
        return engine
          .submit(request(id, j.prompt, j.name, j.n), (t) => streamed.get(id)!.push(t.id))
          .then((r) => ({ id, r }));
      }),
    );
    const expected = new Map<string, number[]>();
    for (const [k, j] of jobs.entries()) {
      const key = `${j.name}:${j.prompt.join(",")}`;
      if (!expected.has(key)) expected.set(key, await alone(j.name ? dirs[j.name]! : null, j.prompt, 15));
      const want = expected.get(key)!.slice(0, j.n);
      const { r } = results[k]!;
      assert.deepEqual(streamed.get(`r${k}`), want, `${key} (${j.n} tokens)`);
      assert.equal(r.finish, "length");
      assert.equal(r.completionTokens, j.n);
      assert.equal(r.promptTokens, j.prompt.length);
    }
    // The adapters really differ from the base and from each other on the same prompt.
    const answers = names.map((n) => expected.get(`${n}:${PROMPTS[0]!.join(",")}`)!.join(","));
    assert.equal(new Set(answers).size, names.length, answers.join(" | "));
    assert.equal(engine.stats().running, 0);
  } finally {
    await engine.close();
  }
});

test("loading and unloading adapters while others decode leaves their answers unchanged", async () => {
  const engine = await BatchEngine.create(MODEL, [{ name: "qv", dir: dirs.qv! }], { maxBatch: 8 });
  try {
    const want = await alone(dirs.qv!, PROMPTS[2]!, 20);
    const wantAll = await alone(dirs.all!, PROMPTS[0]!, 6);
    const got: number[] = [];
    const running = engine.submit(request("long", PROMPTS[2]!, "qv", 20), (t) => got.push(t.id));
    await engine.loadAdapter("all", dirs.all!);
    const b: number[] = [];
    await engine.submit(request("b", PROMPTS[0]!, "all", 6), (t) => b.push(t.id));
    assert.deepEqual(b, wantAll);
    await engine.unloadAdapter("all");
    await assert.rejects(
      engine.submit(request("c", PROMPTS[0]!, "all", 2), () => {}),
      (e: EngineError) => e.kind === "unknown_adapter",
    );
    await engine.loadAdapter("all", dirs.all!);
    const c: number[] = [];
    await engine.submit(request("d", PROMPTS[0]!, "all", 6), (t) => c.push(t.id));
    assert.deepEqual(c, wantAll);
    await running;
    assert.deepEqual(got, want);
  } finally {
    await engine.close();
  }
});

test("a lora_mix equals the adapter made by combine --type cat", async () => {
  const mixed = join(work, "mixed");
  saveAdapter(mixed, combineAdapters([loadAdapter(dirs.qv!), loadAdapter(dirs.all!)], [0.7, -0.4], "cat"));
  const want = await alone(mixed, PROMPTS[1]!, 10);
  const engine = await BatchEngine.create(MODEL, [
    { name: "qv", dir: dirs.qv! },
    { name: "all", dir: dirs.all! },
  ]);
  try {
    const got: number[] = [];
    await engine.submit(
      {
        ...request("m", PROMPTS[1]!, null, 10),
        mix: [
          { name: "qv", weight: 0.7 },
          { name: "all", weight: -0.4 },
        ],
      },
      (t) => got.push(t.id),
    );
    assert.deepEqual(got, want);
  } finally {
    await engine.close();
  }
});

test("cancel, stop ids, logprobs, the queue limit and bad requests", async () => {
  const engine = await BatchEngine.create(MODEL, [], { maxBatch: 1, maxQueue: 1 });
  try {
    const base = await alone(null, PROMPTS[0]!, 8);
    // A stop id ends the request after emitting it.
    const stopped: number[] = [];
    const r1 = await engine.submit({ ...request("s", PROMPTS[0]!, null, 8), stopIds: [base[2]!] }, (t) =>
      stopped.push(t.id),
    );
    assert.equal(r1.finish, "stop");
    assert.deepEqual(stopped, base.slice(0, base.indexOf(base[2]!) + 1));
    // Logprobs: the chosen token's equals the best of the top list under greedy decoding.
    const events: { id: number; logprob?: number; top?: { id: number; logprob: number }[] }[] = [];
    await engine.submit({ ...request("l", PROMPTS[0]!, null, 3), logprobs: 3 }, (t) => events.push(t));
    for (const e of events) {
      assert.equal(e.top!.length, 3);
      assert.equal(e.top![0]!.id, e.id);
      assert.equal(e.top![0]!.logprob, e.logprob);
      assert.ok(e.logprob! <= 0 && e.top![1]!.logprob <= e.logprob!);
    }
    // One running, one waiting: a third is refused with queue_full.
    const a = engine.submit(request("a", PROMPTS[0]!, null, 200), () => {});
    while (engine.stats().running === 0) await new Promise((r) => setTimeout(r, 1));
    const b = engine.submit(request("b", PROMPTS[0]!, null, 200), () => {});
    assert.deepEqual([engine.stats().running, engine.stats().queued], [1, 1]);
    await assert.rejects(
      engine.submit(request("c", PROMPTS[0]!, null, 2), () => {}),
      (e: EngineError) => e.kind === "queue_full",
    );
    engine.cancel("a");
    engine.cancel("b");
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.finish, "cancelled");
    assert.ok(ra.completionTokens < 200);
    assert.equal(rb.finish, "cancelled");
    await assert.rejects(
      engine.submit(request("x", [], null), () => {}),
      /prompt is empty/,
    );
    await assert.rejects(
      engine.submit(request("x", [0, 99999], null), () => {}),
      /outside the vocabulary/,
    );
    await assert.rejects(
      engine.submit(request("x", new Array(256).fill(1), null), () => {}),
      /context is 256/,
    );
    await assert.rejects(
      engine.submit(request("x", [0], "nope"), () => {}),
      (e: EngineError) => e.kind === "unknown_adapter",
    );
  } finally {
    await engine.close();
  }
});

test("GPT-2: Conv1D layers, an embedding adapter and trained biases in one mixed batch", async () => {
  const model = join(work, "gpt2");
  mkdirSync(model);
  writeRandomModel(
    model,
    {
      architectures: ["GPT2LMHeadModel"],
      model_type: "gpt2",
      vocab_size: 300,
      n_embd: 32,
      n_layer: 2,
      n_head: 4,
      n_positions: 64,
      bos_token_id: 0,
      eos_token_id: 0,
    },
    { seed: 5 },
  );
  const emb = join(work, "gpt2-emb");
  const bias = join(work, "gpt2-bias");
  writeRandomAdapter(model, emb, {
    seed: 6,
    r: 3,
    lora_alpha: 6,
    target_modules: ["wte", "c_attn"],
    scale: 0.3,
  });
  writeRandomAdapter(model, bias, {
    seed: 7,
    r: 2,
    lora_alpha: 4,
    target_modules: ["c_fc"],
    bias: "all",
    scale: 0.3,
  });
  const solo = async (dir: string | null, prompt: number[]) => {
    const lm = await loadCausalLM(model, dir ? { adapters: [{ name: "a", dir }] } : {});
    try {
      return (
        await generate(lm, [prompt], {
          maxNewTokens: 8,
          eosIds: [],
          extraFeeds: lm.adapterFeeds(dir ? "a" : null),
        })
      )[0]!;
    } finally {
      await lm.release();
    }
  };
  const engine = await BatchEngine.create(model, [
    { name: "emb", dir: emb },
    { name: "bias", dir: bias },
  ]);
  try {
    const prompts = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]];
    const choices = [null, "emb", "bias"] as const;
    const jobs = choices.flatMap((c) => prompts.map((p) => ({ c, p })));
    const got = await Promise.all(
      jobs.map(async (j, k) => {
        const ids: number[] = [];
        await engine.submit(request(`g${k}`, j.p, j.c, 8), (t) => ids.push(t.id));
        return ids;
      }),
    );
    const answers = new Set<string>();
    for (const [k, j] of jobs.entries()) {
      const want = await solo(j.c === "emb" ? emb : j.c === "bias" ? bias : null, j.p);
      assert.deepEqual(got[k], want, `${j.c} ${j.p}`);
      if (k % prompts.length === 1) answers.add(want.join(","));
    }
    assert.equal(answers.size, 3, "the adapters change the answer");
  } finally {
    await engine.close();
  }
});
