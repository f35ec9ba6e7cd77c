/**
 * One real LoRA training step on the real stories260K model (Llama 2: GQA, tied head), checked
 * against PyTorch autograd: the loss and EVERY element of every lora_A / lora_B gradient that
 * buildTrainStep's ONNX graph returns must equal those of test/peers/llama_lora_reference.py, an
 * independent float64 PyTorch model written from Hugging Face's Llama equations and PEFT's LoRA
 * equations (it reads the adapter from the PEFT files lora-ts saved, with its own safetensors reader).
 *
 * The adapter covers q, k, v, o, gate, up, down and the embedding, with random non-zero A and B
 * (so no gradient is trivially zero), a scaling alpha/r = 1.5 and a rank_pattern module at r 2
 * (scaling 3). The batch has a right-padded row (attention mask 0, pad id) and a completion-only
 * loss mask (prompt labels -100), so the mask, the label shift and the token mean are all exercised.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { padIdOf } from "../../src/data/batching.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { createAdapter } from "../../src/lora/adapter.js";
import { saveAdapter } from "../../src/lora/adapter-files.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { buildTrainStep, shiftLabels } from "../../src/train/train-graph.js";
import { Rng } from "../../src/util/rng.js";
import { needsShared } from "../helpers/shared.js";
import { stories260K } from "../helpers/stories.js";
import { needsTorch, runPeer } from "../helpers/torch.js";
import { LLAMA_ALL_TARGETS } from "../lora/fixtures.js";
import { tempDir } from "../models/fixtures.js";

const skip = needsTorch || needsShared("models/stories260K/stories260K.bin", "models/stories260K/tok512.bin");

/** (prompt, completion) pairs; the completion (plus EOS) is what the loss scores. */
const ROWS: [string, string][] = [
  ["Once upon a time, there was a little girl named Lily.", " She loved to play in the park with her dog."],
  ["Tom had a red ball.", " He was happy."],
  ["The sun was hot, so", " the cat slept under the big green tree all day long."],
];

interface StepResult {
  loss: number;
  grads: Record<string, number[]>;
}

test("stories260K LoRA step (q,k,v,o,gate,up,down + embedding; padded row, completion mask): loss and every A/B gradient equal PyTorch autograd", {
  skip,
}, async () => {
  const modelDir = await stories260K();
  const model = openModelDir(modelDir);
  const config = makeLoraConfig({
    r: 4,
    lora_alpha: 6,
    lora_dropout: 0,
    target_modules: LLAMA_ALL_TARGETS,
    rank_pattern: { up_proj: 2 },
  });
  const selected = selectTargets(config, listModules(model.config), { modelType: model.config.modelType });
  assert.equal(selected.length, 5 * 7 + 1);
  const { adapter } = createAdapter(config, selected, { seed: 3 });
  const rng = new Rng(17);
  for (const t of adapter.tensors.values()) rng.fillNormal(t.data, 0, 0.1);
  const adapterDir = join(tempDir(), "adapter");
  saveAdapter(adapterDir, adapter);

  // The batch, right-padded; labels unshifted (HF's convention), -100 on the prompt and padding.
  const tok = readTokenizer(modelDir);
  const pad = padIdOf(tok);
  const encoded = ROWS.map(([p, c]) => {
    const prompt = tok.encode(p, { addBos: true });
    const completion = [...tok.encode(c), tok.eosId!];
    return { ids: [...prompt, ...completion], trained: prompt.length };
  });
  const seq = Math.max(...encoded.map((e) => e.ids.length));
  const batch = encoded.length;
  assert.ok(
    encoded.some((e) => e.ids.length < seq - 3),
    "one row must be padded",
  );
  const ids: number[][] = [];
  const mask: number[][] = [];
  const labels: number[][] = [];
  for (const e of encoded) {
    const n = e.ids.length;
    ids.push([...e.ids, ...Array<number>(seq - n).fill(pad)]);
    mask.push(Array.from({ length: seq }, (_, t) => (t < n ? 1 : 0)));
    labels.push(Array.from({ length: seq }, (_, t) => (t >= e.trained && t < n ? e.ids[t]! : -100)));
  }
  const flat = (rows: number[][]) => BigInt64Array.from(rows.flat(), (v) => BigInt(v));

  const t0 = performance.now();
  const step = await buildTrainStep(model, { mode: "lora", selected, dropout: 0 }, { threads: 1 });
  const values = step.params.map((p) => adapter.tensors.get(p.name)!.data);
  assert.equal(step.params.length, 2 * selected.length);
  const ours = await step.run(
    {
      ids: flat(ids),
      attentionMask: flat(mask),
      targets: shiftLabels(flat(labels), batch, seq),
      batch,
      seq,
    },
    values,
    { train: true },
  );
  await step.release();
  model.weights.close();
  const t1 = performance.now();

  const ref = runPeer<{ results: StepResult[] }>("llama_lora_reference.py", {
    model_dir: modelDir,
    dtype: "float64",
    jobs: [{ mode: "step", adapter: adapterDir, ids, attention_mask: mask, labels }],
  }).results[0]!;
  const t2 = performance.now();
  console.log(`ONNX step ${(t1 - t0).toFixed(0)} ms, torch reference ${(t2 - t1).toFixed(0)} ms`);

  // Tolerances: the reference runs in float64, so each difference is lora-ts's float32 rounding alone.
  // Measured on this batch: loss rel 3e-8 (torch's own float32 run: 5e-8); gradients, relative to
  // each tensor's largest element, at most 6.4e-6 (torch's own float32 run: 8.1e-6). The bounds,
  // loss rel 1e-6 and |ours − torch| ≤ 1e-7 + 5e-5 · max|torch| per tensor, leave a margin of ~6 over
  // float32's own error, while a wrong scaling, mask or attention factor moves them by 1e-2 or more.
  const lossRel = Math.abs(ours.loss - ref.loss) / Math.abs(ref.loss);
  assert.ok(lossRel <= 1e-6, `loss ${ours.loss} vs torch ${ref.loss} (rel ${lossRel.toExponential(2)})`);

  assert.deepEqual(Object.keys(ref.grads).sort(), step.params.map((p) => p.name).sort());
  let worst = 0;
  let worstKey = "";
  step.params.forEach((p, i) => {
    const g = ours.grads[i]!;
    const want = ref.grads[p.name]!;
    assert.equal(g.length, want.length, p.name);
    const scale = Math.max(...want.map(Math.abs));
    assert.ok(
      scale > 1e-4,
      `${p.name}: the reference gradient is ~0 (max ${scale}), the check would be empty`,
    );
    const tol = 1e-7 + 5e-5 * scale;
    for (let k = 0; k < want.length; k++) {
      const d = Math.abs(g[k]! - want[k]!);
      if (d / scale > worst) {
        worst = d / scale;
        worstKey = `${p.name}[${k}]`;
      }
      assert.ok(d <= tol, `${p.name}[${k}]: ${g[k]} vs torch ${want[k]} (|diff| ${d}, tol ${tol})`);
    }
  });
  console.log(
    `loss rel diff ${lossRel.toExponential(2)}; worst gradient |diff|/max ${worst.toExponential(2)} at ${worstKey}`,
  );
});
