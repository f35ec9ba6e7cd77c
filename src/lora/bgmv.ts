/**
 * Many adapters in one batch (Punica's BGMV, S-LoRA): every row of the batch picks its own adapter.
 * The adapters' tensors are stacked into slots, one per loaded adapter, and the graph gathers each
 * row's pair by the row's slot index:
 *
 *     linear:     y[b] = x[b]·Wᵀ + bias + (x[b]·Aₜ[slot[b]])·Bₜ[slot[b]]
 *     embedding:  y[b] = E[ids[b]] + Aₜ[slot[b], ids[b]]·Bₜ[slot[b]]
 *
 * with Aₜ = Aᵀ [in, r] (an embedding's A is already [r, vocab], so Aₜ = Aᵀ [vocab, r]) and
 * Bₜ = s·Bᵀ [r, out]: the scaling is folded into B when a slot is filled (slots.ts), so a slot holds
 * everything that differs between adapters and the graph needs no per-module scalar. Slot 0 is the
 * base model (zeros). Adapters of lower rank than the stack are zero-padded, which is exact. The
 * stacks are graph inputs, so loading an adapter refills them and never rebuilds the session.
 *
 * A layer whose bias some adapter trains gets a stacked bias *delta* (adapter bias − base bias,
 * zero for adapters that leave it alone), gathered the same way.
 */
import type { Value } from "../graph/ir.js";
import * as o from "../graph/ops.js";
import type { LinearSpec, ModuleContext, ModuleInfo } from "../models/module.js";

/** Graph input names of the stacked slot tensors. */
export const BGMV_NAMES = {
  /** int64 [batch]: each row's slot. */
  slot: "lora_slot",
  /** float32 [slots, in, r] (embedding: [slots, vocab, r]). */
  A: (path: string) => `lora_slots_A:${path}`,
  /** float32 [slots, r, out] (embedding: [slots, r, dim]), scaling folded in. */
  B: (path: string) => `lora_slots_B:${path}`,
  /** float32 [slots, out]: the adapter's bias minus the base bias. */
  bias: (path: string) => `lora_slots_bias:${path}`,
};

export interface BgmvContext extends ModuleContext {
  /** The modules that got a slot-gathered adapter path. */
  readonly adapted: readonly ModuleInfo[];
}

/**
 * Wraps `base` so that each module in `modules` adds the row's adapter, and each layer in
 * `biasLayers` adds the row's bias delta.
 */
export function bgmvContext(
  base: ModuleContext,
  modules: readonly ModuleInfo[],
  biasLayers: ReadonlySet<string> = new Set(),
): BgmvContext {
  const g = base.graph;
  const byPath = new Map(modules.map((m) => [m.path, m]));
  let slot: Value | undefined;
  const slotInput = (): Value => {
    slot ??= g.input(BGMV_NAMES.slot, "int64", ["batch"]);
    return slot;
  };
  const stacks = (m: ModuleInfo) => {
    const r = `slot_r_${m.path}`; // the stack's rank: the highest of the loaded adapters'
    return {
      A: g.input(BGMV_NAMES.A(m.path), "float32", ["slots", m.inFeatures, r]),
      B: g.input(BGMV_NAMES.B(m.path), "float32", ["slots", r, m.outFeatures]),
    };
  };

  return {
    graph: g,
    adapted: modules,
    param: (name) => base.param(name),
    linear(x: Value, spec: LinearSpec): Value {
      let y = base.linear(x, spec);
      if (biasLayers.has(spec.path)) {
        const delta = g.input(BGMV_NAMES.bias(spec.path), "float32", ["slots", spec.outFeatures]);
        y = o.add(y, o.unsqueeze(o.gather(delta, slotInput(), 0), [1])); // [batch, 1, out]
      }
      const m = byPath.get(spec.path);
      if (m?.kind !== "linear") return y;
      const { A, B } = stacks(m);
      const s = slotInput();
      // [batch, seq, in]·[batch, in, r]·[batch, r, out]
      return o.add(y, o.matmul(o.matmul(x, o.gather(A, s, 0)), o.gather(B, s, 0)));
    },
    embedding(ids: Value, path: string): Value {
      const y = base.embedding(ids, path);
      const m = byPath.get(path);
      if (m?.kind !== "embedding") return y;
      const { A, B } = stacks(m);
      const s = slotInput();
      // GatherND on [slots, vocab, r] with (slot[b], ids[b, t]) pairs: [batch, seq, r].
      const rowSlot = o.expandAs(o.unsqueeze(s, [1]), ids);
      const pairs = o.concat([o.unsqueeze(rowSlot, [2]), o.unsqueeze(ids, [2])], 2);
      const rows = o.gatherND(A, pairs);
      return o.add(y, o.matmul(rows, o.gather(B, s, 0)));
    },
  };
}
