/**
 * LoRA dropout on the adapter input, drop(x) = x ⊙ keep / (1 − p), with the keep masks drawn in
 * TypeScript and fed to the graph as uint8 [batch, seq, in] inputs, one per adapted module.
 *
 * Each mask comes from its own xoshiro128** stream, seeded by (step seed, module index): independent
 * per module as in PEFT (one nn.Dropout per module), and a pure function of the step, so a resumed run
 * draws exactly the masks an uninterrupted one would. Drawing them here rather than hashing element
 * indices inside the graph costs one 32-bit draw per two elements; the in-graph hash took 11
 * elementwise int64 ops per module (13% of a SmolLM step, and thousands of nodes to build).
 *
 * The backward pass recomputes keep / (1 − p) from the uint8 mask, which is fed anyway, instead of
 * keeping a float32 copy of every mask alive (3 bytes less per adapted input element).
 *
 * The adapter's first product goes with it (`project`): h = drop(x)·Aᵀ is one region, whose backward
 * pass recomputes drop(x) from x for d A rather than keeping it. Layers that read the same x (q, k
 * and v; gate and up) each drew their own mask, so each kept its own float32 drop(x) for A's
 * gradient, plus the float factor onnxruntime computed early: on an all-linear SmolLM-135M that was
 * 58% of the activations. Now x, alive once for all of them, is what is kept. The recomputation is
 * gated on dh (graph/checkpoint.ts's gate), else onnxruntime would merge it with the forward pass's
 * identical nodes or run it early, and keep the very tensors this is meant to free.
 */
import { gate, gateFlag } from "../graph/checkpoint.js";
import type { Graph, Value } from "../graph/ir.js";
import * as nn from "../graph/nn.js";
import * as o from "../graph/ops.js";
import type { TensorValue } from "../graph/runtime.js";
import { GraphBuildError } from "../util/errors.js";
import { Rng } from "../util/rng.js";

/** The name of module `index`'s keep-mask input. */
export const dropoutMaskName = (index: number) => `lora_dropout_keep:${index}`;

/** One mask input of the graph: module `index` (1-based, in creation order), `features` per token. */
export interface DropoutMaskInput {
  name: string;
  index: number;
  features: number;
}

/**
 * Dropout for one graph: `rate` is a float32 [] input (fed 0 for evaluation), and every call to
 * `project` adds a mask input for the next module.
 */
export class DropoutInputs {
  readonly masks: DropoutMaskInput[] = [];
  private readonly scale: Value;

  constructor(
    readonly graph: Graph,
    rate: Value,
  ) {
    this.scale = o.div(o.scalar(graph, 1), o.sub(1, rate));
  }

  /** drop(x)·Aᵀ for x [batch, seq, in] and A [r, in], keeping x rather than drop(x) (see above). */
  project(x: Value, A: Value): Value {
    return droppedProduct(x, this.maskFor(x), this.scale, A);
  }

  /**
   * drop(x) and drop(x)·Aᵀ on one mask, for DoRA's dropout form, which also multiplies the frozen
   * weight by drop(x) (dora.ts). Neither keeps a float32 copy of the mask for the backward pass.
   */
  dropAndProject(x: Value, A: Value): { dropped: Value; projected: Value } {
    const keep = this.maskFor(x);
    return { dropped: dropped(x, keep, this.scale), projected: droppedProduct(x, keep, this.scale, A) };
  }

  private maskFor(x: Value): Value {
    const [b, t, features] = x.shape;
    if (x.rank !== 3 || b !== "batch" || t !== "seq" || typeof features !== "number")
      throw new GraphBuildError(`LoRA dropout: expected an input [batch, seq, n], got ${x}`);
    const index = this.masks.length + 1;
    const name = dropoutMaskName(index);
    this.masks.push({ name, index, features });
    return this.graph.input(name, "uint8", ["batch", "seq", features]);
  }
}

/** keep / (1 − p) in x's dtype. */
function keepFactor(x: Value, keep: Value, scale: Value): Value {
  return o.mul(o.cast(keep, x.dtype), o.cast(scale, x.dtype));
}

/**
 * drop(x) = x ⊙ keep·scale, with d x = dy ⊙ keep·scale recomputed from the fed mask in the backward
 * pass (gated on dy, as below): the ordinary Mul rule would keep the float32 factor alive from the
 * forward pass, 4 bytes per input element.
 */
export function dropped(x: Value, keep: Value, scale: Value): Value {
  const [y] = x.graph.region({
    name: "LoRA dropout",
    inputs: [x],
    forward: () => ({ outputs: [o.mul(x, keepFactor(x, keep, scale))], saved: [keep, scale] }),
    backward: ([keep, scale], [dy], needs) => [
      needs[0] ? o.mul(dy, keepFactor(dy, gate(keep, gateFlag([dy])), scale)) : null,
    ],
  });
  return y;
}

/**
 * h = (x ⊙ keep·scale)·Aᵀ with
 *   d x = (dh·A) ⊙ keep·scale,   d A = dhᵀ·(x ⊙ keep·scale)   (summed over the tokens),
 * drop(x) recomputed in the backward pass from the kept x and the fed mask, read through a gate on
 * dh so that neither can be merged with, or run as early as, the forward pass's copy.
 */
export function droppedProduct(x: Value, keep: Value, scale: Value, A: Value): Value {
  const [h] = x.graph.region({
    name: "LoRA dropout·A",
    inputs: [x, A],
    forward: () => ({
      outputs: [nn.linear(o.mul(x, keepFactor(x, keep, scale)), A)],
      saved: [x, keep, scale, A],
    }),
    backward: ([x, keep, scale, A], [dh], needs) => {
      const flag = gateFlag([dh]);
      const factor = keepFactor(x, gate(keep, flag), scale);
      const dx = needs[0] ? o.mul(o.product(dh, A, false, false), factor) : null;
      const rows = (v: Value) => o.reshape(v, [-1, v.dim(-1)]);
      const dA = needs[1] ? o.product(rows(dh), rows(o.mul(gate(x, flag), factor)), true, false) : null;
      return [dx, dA];
    },
  });
  return h;
}

/**
 * The keep mask (1 = kept) of `count` elements for module `index` at step seed `seed`: each element
 * is dropped when a 16-bit uniform draw falls below rate·65536.
 */
export function keepMask(
  seed: number,
  index: number,
  rate: number,
  count: number,
  out = new Uint8Array(count),
): Uint8Array {
  if (rate <= 0) return out.fill(1);
  return Rng.derive(seed, `lora-dropout:${index}`).fillKeepFlags(out, Math.round(rate * 65536));
}

/**
 * The mask arrays a training step feeds, kept from step to step: each step's masks are drawn into
 * the previous step's arrays instead of new ones. Fresh arrays every step left earlier steps' masks
 * for the garbage collector (an all-linear SmolLM-135M step at 4×256 feeds 150 MB of them), and the
 * peak held several steps' worth. A mask fed to a run must not be kept past the next draw.
 */
export class MaskBuffers {
  private readonly drawn = new Map<string, Uint8Array<ArrayBuffer>>();
  /** All-ones masks by size, for runs without dropout (never written after they are made). */
  private readonly ones = new Map<number, Uint8Array>();

  draw(name: string, count: number): Uint8Array<ArrayBuffer> {
    let buf = this.drawn.get(name);
    if (!buf || buf.length < count) {
      buf = new Uint8Array(count);
      this.drawn.set(name, buf);
    }
    return buf.subarray(0, count);
  }

  allOnes(count: number): Uint8Array {
    let data = this.ones.get(count);
    if (!data) {
      data = new Uint8Array(count).fill(1);
      this.ones.set(count, data);
    }
    return data;
  }
}

/** The mask feeds of one run: fresh masks in training (in `buffers`' arrays), all-ones otherwise. */
export function maskFeeds(
  masks: readonly DropoutMaskInput[],
  batch: number,
  seq: number,
  opts: { rate: number; seed: number },
  buffers: MaskBuffers,
): Record<string, TensorValue> {
  const feeds: Record<string, TensorValue> = {};
  for (const m of masks) {
    const count = batch * seq * m.features;
    const data =
      opts.rate > 0
        ? keepMask(opts.seed, m.index, opts.rate, count, buffers.draw(m.name, count))
        : buffers.allOnes(count);
    feeds[m.name] = { dtype: "uint8", dims: [batch, seq, m.features], data };
  }
  return feeds;
}
