/**
 * src/web under Node (onnxruntime-node): the browser's training run computes what `train()` computes,
 * step by step, and its adapter files are the ones train() writes; a model opened from bytes in
 * memory is the model opened from its folder; missing files are one-line errors naming them.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import test from "node:test";
import { DEFAULT_MODEL_DIR } from "../../src/models/default-model.js";
import { train } from "../../src/train/trainer.js";
import { greedyAnswers } from "../../src/web/answers.js";
import { openModelFiles } from "../../src/web/model-files.js";
import { type FileMap, WEB_DEFAULTS, type WebTrainSettings } from "../../src/web/protocol.js";
import { TrainingRun } from "../../src/web/training-run.js";
import { tempDir } from "../models/fixtures.js";

function defaultModelFiles(): FileMap {
  const files: FileMap = {};
  for (const name of readdirSync(DEFAULT_MODEL_DIR))
    if (/\.(json|safetensors)$/.test(name))
      files[name] = new Uint8Array(readFileSync(join(DEFAULT_MODEL_DIR, name)));
  return files;
}

const DATA = join(DEFAULT_MODEL_DIR, "data/persona.jsonl");
const SETTINGS: WebTrainSettings = {
  ...WEB_DEFAULTS,
  r: 4,
  alpha: 8,
  dropout: 0.1,
  targets: "q_proj,v_proj,down_proj",
  lr: 3e-3,
  steps: 6,
  maxLength: 64,
  batchSize: 4,
  seed: 3,
  schedule: "cosine",
  warmupSteps: 2,
};

test("web TrainingRun: every step's loss is train()'s, stopped and continued, and the adapter files are train()'s", async () => {
  const out = join(tempDir(), "run");
  const nodeLosses: number[] = [];
  await train(
    {
      model: DEFAULT_MODEL_DIR,
      data: DATA,
      out,
      r: SETTINGS.r,
      alpha: SETTINGS.alpha,
      dropout: SETTINGS.dropout,
      targets: ["q_proj", "v_proj", "down_proj"],
      lr: SETTINGS.lr,
      maxSteps: SETTINGS.steps,
      maxLength: SETTINGS.maxLength,
      batchSize: SETTINGS.batchSize,
      seed: SETTINGS.seed,
      schedule: SETTINGS.schedule,
      warmupSteps: SETTINGS.warmupSteps,
    },
    [{ onStep: (m) => nodeLosses.push(m.loss) }],
  );

  const web = openModelFiles(defaultModelFiles(), "default");
  const run = await TrainingRun.create(
    web,
    { name: "persona.jsonl", text: readFileSync(DATA, "utf8") },
    SETTINGS,
  );
  const webLosses: number[] = [];
  // Stop after 2 steps, then continue: the numbers must not change.
  assert.equal(
    await run.advance(
      () => webLosses.length >= 2,
      (m) => webLosses.push(m.loss),
    ),
    "stopped",
  );
  assert.equal(run.stepsDone, 2);
  assert.equal(
    await run.advance(
      () => false,
      (m) => webLosses.push(m.loss),
    ),
    "done",
  );
  assert.equal(webLosses.length, SETTINGS.steps);
  webLosses.forEach((l, i) => {
    const rel = Math.abs(l - nodeLosses[i]!) / Math.abs(nodeLosses[i]!);
    assert.ok(rel < 1e-6, `step ${i + 1}: web ${l} vs train() ${nodeLosses[i]}`);
  });
  assert.ok(webLosses.at(-1)! < webLosses[0]!, "the loss went down");
  assert.equal(run.data.examples, 300);
  assert.equal(run.data.notes.length, 1, "max length within the context: no cap note");

  // The adapter files match what train() wrote, byte for byte (same values, same layout).
  const files = run.adapterFiles();
  assert.deepEqual(
    Buffer.from(files["adapter_model.safetensors"]!),
    readFileSync(join(out, "adapter_model.safetensors")),
  );
  const cfg = JSON.parse(new TextDecoder().decode(files["adapter_config.json"]));
  const nodeCfg = JSON.parse(readFileSync(join(out, "adapter_config.json"), "utf8"));
  assert.deepEqual({ ...cfg, base_model_name_or_path: null }, { ...nodeCfg, base_model_name_or_path: null });

  // Greedy answers with the trained adapter differ from the base model's.
  const prompts = ["Q: What do cows eat?\nA:"];
  const before = await greedyAnswers(web, null, prompts, 12);
  const after = await greedyAnswers(web, run.adapter, prompts, 12);
  assert.equal(before[0]!.ids.length > 0, true);
  assert.notDeepEqual(before[0]!.ids, after[0]!.ids);
  await run.release();
  web.model.weights.close();
});

test("web openModelFiles: the same tensors as the folder; missing files and shards are one-line errors naming them", () => {
  const files = defaultModelFiles();
  const web = openModelFiles(files, "default");
  assert.equal(web.model.config.layers > 0, true);
  const name = web.model.weights.names()[0]!;
  // Under Node the graphs embed the tensors (onnxruntime-node takes external data from files only).
  assert.equal(web.model.weights.info(name).location, null);
  assert.ok(web.model.weights.readFloat32(name).length > 0);
  assert.deepEqual(
    web.model.weights.sessionFiles().externalData?.map((f) => f.path),
    ["model.safetensors"],
  );

  const without = (n: string) => Object.fromEntries(Object.entries(files).filter(([k]) => k !== n));
  assert.throws(() => openModelFiles(without("config.json"), "picked"), /picked\/config\.json: not found/);
  assert.throws(
    () => openModelFiles(without("tokenizer.json"), "picked"),
    /picked\/tokenizer\.json: not found/,
  );
  assert.throws(
    () => openModelFiles(without("model.safetensors"), "picked"),
    /picked\/model\.safetensors: not found among the picked files \(nor model\.safetensors\.index\.json\)/,
  );
  const index = new TextEncoder().encode(
    JSON.stringify({ weight_map: { [name]: "model-00001-of-00002.safetensors" } }),
  );
  assert.throws(
    () =>
      openModelFiles({ ...without("model.safetensors"), "model.safetensors.index.json": index }, "picked"),
    /picked\/model-00001-of-00002\.safetensors: named by model\.safetensors\.index\.json but not picked/,
  );
  const truncated = { ...files, "model.safetensors": files["model.safetensors"]!.subarray(0, 1000) };
  assert.throws(() => openModelFiles(truncated, "picked"), /picked\/model\.safetensors: .*truncated/);
  web.model.weights.close();
});

test("web TrainingRun: a max length beyond the model's context is capped to it, and the data notes say so", async () => {
  const web = openModelFiles(defaultModelFiles(), "default");
  const context = web.model.config.maxPositions;
  const run = await TrainingRun.create(
    web,
    { name: "persona.jsonl", text: readFileSync(DATA, "utf8") },
    { ...SETTINGS, maxLength: context * 2, steps: 1 },
  );
  assert.ok(
    run.data.notes.includes(`max length ${context * 2} capped to the model's context of ${context} tokens`),
    run.data.notes.join("; "),
  );
  await run.release();
  web.model.weights.close();
});
