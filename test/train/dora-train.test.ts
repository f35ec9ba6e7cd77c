/**
 * Training DoRA: the magnitude is trained and saved under PEFT's key, a crashed run resumes to the
 * same losses (the magnitude and its AdamW moments restored), gradient checkpointing gives the same
 * run, --base-int8 is refused in one line, and `lora-ts train --dora` on the embedded default model
 * writes a PEFT adapter that `eval` and `generate` read; `info --lora` and the memory estimate count the magnitudes.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { toTrainOptions } from "../../src/cli/train-config.js";
import { magnitudeKey } from "../../src/lora/adapter.js";
import { loadAdapter } from "../../src/lora/adapter-files.js";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { openModelDir } from "../../src/models/open-model.js";
import type { StepMetrics } from "../../src/train/events.js";
import { loraSelection } from "../../src/train/lora-setup.js";
import { memoryTerms } from "../../src/train/memory-estimate.js";
import { listCheckpoints, type TrainOptions, train } from "../../src/train/trainer.js";
import { runCli, runTrain } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";
import { tempDir } from "../models/fixtures.js";

function collect(into: Map<number, number>, stopAt?: number) {
  return {
    onStep(m: StepMetrics) {
      into.set(m.step, m.loss);
      if (m.step === stopAt) throw new Error("simulated crash");
    },
  };
}

const model = tinyModel("llama", 3, { num_key_value_heads: 2 });
const data = wordData(12);
const base: TrainOptions = {
  model,
  data,
  out: "",
  r: 4,
  targets: ["q_proj", "v_proj", "down_proj", "embed_tokens"],
  dora: true,
  dropout: 0.1,
  lr: 1e-2,
  maxSteps: 5,
  batchSize: 3,
  saveEvery: 2,
  seed: 5,
  threads: 1,
};

test("DoRA training: magnitudes trained and saved under PEFT's key; resume after a crash gives the same losses; gradient checkpointing the same run", async () => {
  const full = new Map<number, number>();
  const fullOut = tempDir();
  await train({ ...base, out: fullOut }, [collect(full)]);
  const adapter = loadAdapter(fullOut);
  assert.equal(adapter.config.use_dora, true);
  const key = magnitudeKey("model.layers.0.self_attn.q_proj");
  const m = adapter.tensors.get(key);
  assert.deepEqual(m?.shape, [32]);
  assert.deepEqual(adapter.tensors.get(magnitudeKey("model.embed_tokens"))?.shape, [32]);
  const start = loadAdapter(listCheckpoints(fullOut)[0]!.dir).tensors.get(key)!.data;
  assert.ok(
    m!.data.some((v, i) => v !== start[i]),
    "the magnitude moves between checkpoints (it is trained)",
  );

  const out = tempDir();
  await assert.rejects(train({ ...base, out }, [collect(new Map(), 3)]), /simulated crash/);
  const resumed = new Map<number, number>();
  await train({ ...base, out, resume: true }, [collect(resumed)]);
  assert.deepEqual([...resumed.keys()], [3, 4, 5]);
  for (const [s, loss] of resumed)
    assert.ok(Math.abs(loss - full.get(s)!) <= 1e-6, `step ${s}: ${loss} vs ${full.get(s)}`);

  const ckpt = new Map<number, number>();
  await train({ ...base, out: tempDir(), gradientCheckpointing: true }, [collect(ckpt)]);
  for (const [s, loss] of ckpt)
    assert.ok(Math.abs(loss - full.get(s)!) <= 1e-5, `checkpointed step ${s}: ${loss} vs ${full.get(s)}`);
});

test("DoRA with --base-int8 is refused in one line", async () => {
  await assert.rejects(
    train({ ...base, out: tempDir(), baseInt8: true, maxSteps: 1 }),
    (e: Error) => /--base-int8 cannot train DoRA/.test(e.message) && !e.message.includes("\n"),
  );
});

test("lora-ts train --dora on the embedded default model writes PEFT's DoRA adapter; eval and generate read it", () => {
  const out = join(tempDir(), "run");
  const persona = join(DEFAULT_MODEL_DIR, "data", "persona.jsonl");
  const r = runTrain(
    DEFAULT_MODEL_DIR,
    persona,
    out,
    "--dora",
    "--max-steps",
    "2",
    "--batch-size",
    "2",
    "--max-length",
    "64",
    "--threads",
    "1",
  );
  assert.equal(r.code, 0, r.stderr);
  const config = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.equal(config.use_dora, true);
  const adapter = loadAdapter(out);
  const keys = [...adapter.tensors.keys()].filter((k) => k.endsWith(".lora_magnitude_vector"));
  assert.ok(keys.length > 0);
  for (const k of keys) {
    assert.match(k, /^base_model\.model\.model\.layers\.\d+\.self_attn\.[qv]_proj\.lora_magnitude_vector$/);
    assert.deepEqual(adapter.tensors.get(k)!.shape, [k.includes("q_proj") ? 256 : 128]);
  }
  const e = runCli([
    "eval",
    "--model",
    DEFAULT_MODEL_DIR,
    "--adapter",
    out,
    "--data",
    join(DEFAULT_MODEL_DIR, "data", "persona-heldout.jsonl"),
    "--max-length",
    "64",
    "--json",
  ]);
  assert.equal(e.code, 0, e.stderr);
  assert.ok(Number.isFinite(JSON.parse(e.stdout).loss));
  const gen = runCli([
    "generate",
    "--model",
    DEFAULT_MODEL_DIR,
    "--adapter",
    out,
    "--prompt",
    "Hello",
    "--max-new-tokens",
    "4",
    "--json",
  ]);
  assert.equal(gen.code, 0, gen.stderr);
  assert.equal((JSON.parse(gen.stdout) as { ids: number[] }).ids.length > 0, true);
});

test("info --lora ...,dora=true counts r·(in+out)+out per module; the memory estimate counts the magnitudes", () => {
  const r = runCli([
    "info",
    "--model",
    DEFAULT_MODEL_DIR,
    "--lora",
    "r=8,target=q_proj,v_proj,dora=true",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const count = JSON.parse(r.stdout) as {
    trainable_params: number;
    modules: { in: number; out: number; params: number }[];
  };
  // The default model: 4 layers, q 256 -> 256, v 256 -> 128.
  assert.equal(count.modules.length, 8);
  for (const m of count.modules) assert.equal(m.params, 8 * (m.in + m.out) + m.out);
  assert.equal(count.trainable_params, 4 * (8 * 512 + 256 + 8 * 384 + 128));

  const config = openModelDir(DEFAULT_MODEL_DIR);
  const selection = loraSelection(config, {
    r: 8,
    alpha: 16,
    dropout: 0,
    targets: ["q_proj", "v_proj"],
    baseModel: "",
    seed: 0,
  });
  config.weights.close();
  const input = {
    config: config.config,
    batch: 2,
    seq: 64,
    mode: "lora" as const,
    selected: selection.selected,
  };
  const lora = memoryTerms(input);
  const dora = memoryTerms({ ...input, dora: true });
  assert.equal(dora.trainableParams - lora.trainableParams, 4 * (256 + 128));
  assert.ok(dora.savedPerToken > lora.savedPerToken);
});

test("--dora with --mode full, or dora and use_dora disagreeing in a config, is refused in one line", () => {
  const c = { model: "m", data: "d", out: "o" };
  assert.throws(() => toTrainOptions({ ...c, mode: "full", dora: true }), /does not apply to --mode full/);
  assert.throws(() => toTrainOptions({ ...c, dora: true, use_dora: false }), /dora and use_dora disagree/);
  assert.equal(toTrainOptions({ ...c, use_dora: true }).dora, true);
});
