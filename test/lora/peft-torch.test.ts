/**
 * PEFT compatibility, checked independently: `lora-ts logits --adapter DIR` (the compiled CLI, a
 * child process) on the real stories260K model must give the logits of a PyTorch LoRA forward that
 * test/peers/llama_lora_reference.py writes from Hugging Face's Llama equations and PEFT's documented
 * LoRA equations, reading the adapter_config.json + adapter_model.safetensors that lora-ts's saver
 * wrote (PEFT key names, its own safetensors reader). Nothing of lora-ts's forward is shared.
 *
 * - The reference is itself checked first: its base-model logits equal reference.json's, which were
 *   computed with PyTorch from the llama2.c model definition (so the HF layout is read correctly).
 * - Two adapters, each with random non-zero A and B (the change they make to the logits is checked to
 *   be far above the tolerance, so the comparison can fail):
 *     plain: q_proj, v_proj, down_proj, embed_tokens; r 4, alpha 6 (s = 1.5 ≠ 2, ≠ alpha), with
 *            rank_pattern down_proj: 2 (s = 3) and alpha_pattern v_proj: 2 (s = 0.5);
 *     rslora: q, k, v, o, gate, up and embed_tokens; r 4, alpha 6, use_rslora (s = alpha/√r = 3).
 *   A wrong scaling rule (alpha, alpha/r for rsLoRA, a pattern ignored) fails one of them.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { type LoraConfig, makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { Rng } from "../../src/util/rng.js";
import { needsShared, sharedPath } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { needsTorch, runPeer } from "../helpers/torch.js";
import { tempDir } from "../models/fixtures.js";

const skip =
  needsTorch ||
  needsShared(
    "models/stories260K/stories260K.bin",
    "models/stories260K/tok512.bin",
    "models/stories260K/reference.json",
  );

/** The CLI of the same build as this test (dist/… under `npm test`), so a test build tests itself. */
const CLI = join(dirname(fileURLToPath(import.meta.url)), "../../src/cli/main.js");

function cliLogits(model: string, adapter: string, ids: number[]): number[][] {
  const r = spawnSync(
    process.execPath,
    [CLI, "logits", "--model", model, "--adapter", adapter, "--ids", ids.join(","), "--json"],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { logits: number[][] }).logits;
}

function maxDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length);
  let m = 0;
  a.forEach((row, t) => {
    assert.equal(row.length, b[t]!.length);
    row.forEach((v, i) => {
      m = Math.max(m, Math.abs(v - b[t]![i]!));
    });
  });
  return m;
}

/** Saves (with lora-ts's saver, PEFT format) an adapter for `config` with random A and B. */
function randomAdapter(modelDir: string, config: LoraConfig, seed: number): string {
  const model = openModelDir(modelDir);
  const selected = selectTargets(config, listModules(model.config), { modelType: model.config.modelType });
  model.weights.close();
  const { adapter } = createAdapter(config, selected, { seed });
  const rng = new Rng(seed + 100);
  for (const t of adapter.tensors.values()) rng.fillNormal(t.data, 0, 0.04);
  const dir = join(tempDir(), `adapter-${seed}`);
  saveAdapter(dir, adapter);
  return dir;
}

test("stories260K: `lora-ts logits --adapter` equals a PyTorch forward from PEFT's LoRA equations (plain with rank/alpha patterns, and rsLoRA)", {
  skip,
}, async () => {
  const ref = JSON.parse(readFileSync(sharedPath("models/stories260K/reference.json"), "utf8")) as {
    greedy_from_bos_200: number[];
    logits_after_first_16_tokens: number[];
  };
  const modelDir = await stories260K();
  const plain = randomAdapter(
    modelDir,
    makeLoraConfig({
      r: 4,
      lora_alpha: 6,
      target_modules: ["q_proj", "v_proj", "down_proj", "embed_tokens"],
      rank_pattern: { down_proj: 2 },
      alpha_pattern: { v_proj: 2 },
    }),
    1,
  );
  const rslora = randomAdapter(
    modelDir,
    makeLoraConfig({
      r: 4,
      lora_alpha: 6,
      use_rslora: true,
      target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "embed_tokens"],
    }),
    2,
  );
  // A real story: BOS and the model's first 31 greedy tokens.
  const ids = [1, ...ref.greedy_from_bos_200.slice(0, 31)];

  const t0 = performance.now();
  const [base, wantPlain, wantRs] = runPeer<{ results: { logits: number[][][] }[] }>(
    "llama_lora_reference.py",
    {
      model_dir: modelDir,
      dtype: "float64",
      jobs: [
        { mode: "logits", adapter: null, ids: [ids] },
        { mode: "logits", adapter: plain, ids: [ids] },
        { mode: "logits", adapter: rslora, ids: [ids] },
      ],
    },
  ).results.map((r) => r.logits[0]!);
  const t1 = performance.now();

  // The reference's base model reproduces reference.json (independent PyTorch llama2.c forward).
  const dRef = maxDiff([base![15]!], [ref.logits_after_first_16_tokens]);
  assert.ok(dRef < 1e-4, `reference base logits vs reference.json: ${dRef}`);

  const gotPlain = cliLogits(modelDir, plain, ids);
  const gotRs = cliLogits(modelDir, rslora, ids);
  const t2 = performance.now();
  console.log(`torch reference ${(t1 - t0).toFixed(0)} ms, two CLI runs ${(t2 - t1).toFixed(0)} ms`);

  // Tolerance 1e-4 absolute on logits up to ~22: lora-ts runs in float32, the reference in float64.
  // Measured: 1.1e-5 (plain) and 1.7e-5 (rsLoRA); torch's own float32 forward is 1.3e-5 to 6e-5 off
  // its float64 one on such adapters, so 1e-4 is float32's floor with a margin. Each adapter moves
  // the logits by ≥ 1.8, and that change is checked to exceed 100 × the tolerance.
  const TOL = 1e-4;
  for (const [name, want, got] of [
    ["plain", wantPlain!, gotPlain],
    ["rslora", wantRs!, gotRs],
  ] as const) {
    const effect = maxDiff(want, base!);
    assert.ok(effect > 100 * TOL, `${name}: the adapter changes the reference logits by only ${effect}`);
    const d = maxDiff(got, want);
    console.log(
      `${name}: adapter effect ${effect.toFixed(3)}, CLI vs torch max |diff| ${d.toExponential(2)}`,
    );
    assert.ok(d <= TOL, `${name}: CLI logits vs PyTorch PEFT forward: max |diff| ${d} (tol ${TOL})`);
  }
});
