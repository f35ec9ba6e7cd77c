/**
 * The gradients of the graph `train` runs. buildTrainGraph's LoRA step — the attention core and
 * SwiGLU with their hand-written backward passes, grouped-query attention, the fused LM-head
 * cross-entropy that only sends scored rows through the head, the padding mask, a completion-only
 * loss, and LoRA on every linear layer plus the embedding — is promoted to float64 node for node
 * (test/helpers/float64-graph.ts), and every element of every A and B gradient is compared with a
 * central difference of the loss.
 *
 * Tolerance: float64 central differences with eps 1e-5 carry ~1e-10 relative error, but the
 * normalisations hand their 1/σ to the backward pass in float32 (onnxruntime has no float64 stash),
 * which puts ~1e-7 relative error into the analytic side. A wrong rule is off by O(1) relative.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { AnyTypedArray } from "../../src/graph/dtype.js";
import { emitModel } from "../../src/graph/emit.js";
import { Session, type TensorValue } from "../../src/graph/runtime.js";
import { makeLoraConfig } from "../../src/lora/config.js";
import { selectTargets } from "../../src/lora/targets.js";
import { parseModelConfig } from "../../src/models/family.js";
import { gpt2TensorShapes } from "../../src/models/gpt2.js";
import { IO_NAMES } from "../../src/models/index.js";
import { llamaTensorShapes } from "../../src/models/llama.js";
import { listModules } from "../../src/models/modules.js";
import { openModelDir } from "../../src/models/open-model.js";
import { buildTrainGraph, shiftLabels, TRAIN_IO } from "../../src/train/train-graph.js";
import { randn, rng } from "../graph/gradcheck.js";
import { promoteToFloat64 } from "../helpers/float64-graph.js";
import { LLAMA_ALL_TARGETS } from "../lora/fixtures.js";
import { gpt2Config, llamaConfig, randomWeights, tempDir, writeModelDir } from "../models/fixtures.js";

const VOCAB = 19;
const EPS = 1e-5;
const RTOL = 1e-5;

/**
 * Three rows of 6 tokens: a full row; a right-padded row (attention mask 0, pad id 0, label -100);
 * a completion-only row whose 3 prompt tokens are not scored.
 */
function batch(): { ids: BigInt64Array; mask: BigInt64Array; targets: BigInt64Array; dims: number[] } {
  const ids = [3, 7, 11, 2, 5, 9, 4, 8, 15, 6, 0, 0, 12, 1, 17, 10, 14, 13];
  const mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1];
  const labels = ids.map((id, i) => (mask[i] === 0 || (i >= 12 && i < 15) ? -100 : id));
  const big = (xs: number[]) => BigInt64Array.from(xs.map(BigInt));
  return { ids: big(ids), mask: big(mask), targets: shiftLabels(big(labels), 3, 6), dims: [3, 6] };
}

async function session(graph: ReturnType<typeof buildTrainGraph>["graph"], dir: string): Promise<Session> {
  const bytes = emitModel(promoteToFloat64(graph));
  return Session.create(bytes, { optimization: "disabled", threads: 1, externalDataDir: dir });
}

async function checkTrainStep(dir: string, targets: string[]) {
  const model = openModelDir(dir);
  const config = makeLoraConfig({ r: 2, lora_alpha: 6, lora_dropout: 0, target_modules: targets });
  const selected = selectTargets(config, listModules(model.config));
  const kinds = new Set(selected.map((m) => m.kind));
  assert.deepEqual([...kinds].sort(), ["embedding", "linear"], "linear layers and the embedding are adapted");
  const setup = { mode: "lora" as const, selected, dropout: 0 };
  const withGrads = buildTrainGraph(model, setup, true);
  const params = withGrads.params;
  assert.equal(params.length, 2 * selected.length);
  const gradSession = await session(withGrads.graph, model.weights.externalDir);
  const lossSession = await session(buildTrainGraph(model, setup, false).graph, model.weights.externalDir);

  // Non-zero A and B everywhere (PEFT starts B, or the embedding's A, at zero; then half the
  // gradients would vanish and a rule error there would go unseen).
  const rand = rng(11);
  const values = params.map((p) => Float64Array.from(randn(rand, p.shape[0]! * p.shape[1]!), (v) => 0.4 * v));
  const b = batch();
  const feeds = (): Record<string, TensorValue> => {
    const f: Record<string, TensorValue> = {
      [IO_NAMES.ids]: { dtype: "int64", dims: b.dims, data: b.ids },
      [IO_NAMES.attentionMask]: { dtype: "int64", dims: b.dims, data: b.mask },
      [TRAIN_IO.targets]: { dtype: "int64", dims: b.dims, data: b.targets },
    };
    params.forEach((p, i) => {
      f[p.name] = { dtype: "float64", dims: p.shape, data: values[i]! as AnyTypedArray };
    });
    return f;
  };
  const out = await gradSession.run(feeds());
  const loss = async () =>
    (await lossSession.run(feeds(), [TRAIN_IO.loss]))[TRAIN_IO.loss]!.data[0] as number;
  assert.ok(Math.abs((await loss()) - (out[TRAIN_IO.loss]!.data[0] as number)) < 1e-12);

  let checked = 0;
  let worst = 0;
  for (const [i, p] of params.entries()) {
    const analytic = out[TRAIN_IO.grad(p.name)]!.data as Float64Array;
    const scale = Math.max(...analytic.map(Math.abs));
    assert.ok(scale > 1e-6, `${p.name}: the gradient is not all zero`);
    const v = values[i]!;
    for (let c = 0; c < v.length; c++) {
      const x = v[c]!;
      v[c] = x + EPS;
      const plus = await loss();
      v[c] = x - EPS;
      const minus = await loss();
      v[c] = x;
      const numeric = (plus - minus) / (2 * EPS);
      const err = Math.abs(numeric - analytic[c]!);
      assert.ok(
        err <= RTOL * scale,
        `${p.name}[${c}]: analytic ${analytic[c]}, finite difference ${numeric} (|err| ${err}, scale ${scale})`,
      );
      worst = Math.max(worst, err / scale);
      checked++;
    }
  }
  await gradSession.release();
  await lossSession.release();
  model.weights.close();
  return { checked, worst };
}

test("train step gradients, tiny Llama (GQA 4/2 heads): every LoRA A and B element against float64 finite differences", async (t) => {
  const cfg = llamaConfig({
    vocab_size: VOCAB,
    hidden_size: 16,
    intermediate_size: 12,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  });
  const dir = writeModelDir(
    tempDir(),
    cfg,
    randomWeights(llamaTensorShapes(parseModelConfig(cfg, "config.json")), 5),
  );
  const { checked, worst } = await checkTrainStep(dir, LLAMA_ALL_TARGETS);
  t.diagnostic(`${checked} elements, worst |err| / max|grad| ${worst.toExponential(2)}`);
  assert.ok(checked > 800, `${checked} elements`);
});

test("train step gradients, tiny GPT-2 (Conv1D, tied head): every LoRA A and B element against float64 finite differences", async (t) => {
  const cfg = gpt2Config({ vocab_size: VOCAB, n_embd: 12, n_head: 2, n_inner: 20, n_positions: 16 });
  const shapes = gpt2TensorShapes(parseModelConfig(cfg, "config.json"));
  shapes.delete("lm_head.weight"); // tied to wte
  const dir = writeModelDir(tempDir(), cfg, randomWeights(shapes, 6));
  const { checked, worst } = await checkTrainStep(dir, ["c_attn", "c_proj", "c_fc", "wte"]);
  t.diagnostic(`${checked} elements, worst |err| / max|grad| ${worst.toExponential(2)}`);
  assert.ok(checked > 500, `${checked} elements`);
});
