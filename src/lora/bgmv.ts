/**
 * Many adapters in one batch (as Punica's BGMV and S-LoRA): every row of the batch uses its own
 * adapter, or none. For the S adapters that the batch's rows use, stacked to a common rank R
 * (lower ranks zero-padded) and concatenated:
 *
 *     A_k = [A₁; A₂; …; A_S]          [S·R, in]      each Aᵢ as PEFT stores it, [R, in]
 *     B_k = [s₁·B₁ᵀ; …; s_S·B_Sᵀ]     [S·R, out]     the scaling folded in
 *     M   [batch, S·R]                ones on the block of the row's adapter, zeros elsewhere
 *
 *     linear:     y = x·Wᵀ + b + ((x·A_kᵀ) ⊙ M)·B_k
 *     embedding:  y = E[ids] + (A_kᵀ[ids] ⊙ M)·B_k            (A_k [S·R, vocab])
 *
 * Row b keeps only its own adapter's R columns, so y[b] = x[b]·Wᵀ + b + sᵢ·(x[b]·Aᵢᵀ)·Bᵢᵀ exactly: the
 * other adapters' columns are multiplied by 0 and add nothing. A base-model row has M = 0. Nothing
 * is gathered or copied per row: the stacks are plain matrices, built once per set of adapters
 * (slots.ts) and fed as graph inputs, so loading an adapter never rebuilds the session. The price
 * is S·R columns instead of R per row, which is small next to the base weights while R is small.
 *
 * A layer whose bias some adapter trains adds the row's bias delta (adapter bias − base bias):
 * P·Δ, with P [batch, S] the rows' one-hot adapter choice and Δ [S, out].
 *
 * DoRA (dora.ts) scales a row's whole output but the bias by its adapter's factor f = m / n, computed
 * once per adapter when it is loaded: y = f ⊙ (x·Wᵀ + lora) + b. With G [S, out] holding f − 1 per
 * adapter (0 for a LoRA adapter and for modules it does not adapt), every adapted module computes
 *
 *     z = x·Wᵀ + b + lora;    y = z + (P·G) ⊙ (z − b)
 *
 * which is z for a LoRA or base row (P·G = 0 there) and f ⊙ (x·Wᵀ + lora) + b for a DoRA row. G is a
 * graph input like the stacks, so a DoRA adapter loads without rebuilding the session either; the
 * price is a [batch, S]·[S, out] product and two elementwise ops per adapted module and step.
 */
import type { Value } from "../graph/ir.js";
import * as o from "../graph/ops.js";
import type { LinearSpec, ModuleContext, ModuleInfo } from "../models/module.js";

/** Graph input names of the stacked tensors. */
export const BGMV_NAMES = {
  /** float32 [batch, 1, S·R]: the row masks M. */
  mask: "lora_mask",
  /** float32 [S·R, in] (embedding: [S·R, vocab]): A_k. */
  A: (path: string) => `lora_stack_A:${path}`,
  /** float32 [S·R, out] (embedding: [S·R, dim]): B_k. */
  B: (path: string) => `lora_stack_B:${path}`,
  /** float32 [batch, S]: the rows' one-hot adapter choice P. */
  select: "lora_select",
  /** float32 [S, out]: the adapters' bias deltas Δ. */
  bias: (path: string) => `lora_stack_bias:${path}`,
  /** float32 [S, out] (embedding: [S, dim]): the adapters' DoRA factors minus one, G. */
  dora: (path: string) => `lora_stack_dora:${path}`,
};

/** The symbolic dims: S·R and S. */
const K = "lora_k";
const S = "lora_s";

export interface BgmvContext extends ModuleContext {
  /** The modules that got the stacked adapter path. */
  readonly adapted: readonly ModuleInfo[];
}

export interface BgmvOptions {
  /** Layers whose bias some adapter trains. */
  biasLayers?: ReadonlySet<string>;
  /**
   * The output head (this path) sees only each row's last position, so logits are [batch, 1, vocab].
   * Generation needs nothing else, and a prompt's prefill then skips vocab·hidden work per token.
   */
  lastPositionHead?: string;
}

/**
 * Wraps `base` so that each module in `modules` adds its row's adapter, and each layer in
 * `biasLayers` its row's bias delta.
 */
export function bgmvContext(
  base: ModuleContext,
  modules: readonly ModuleInfo[],
  opts: BgmvOptions = {},
): BgmvContext {
  const biasLayers = opts.biasLayers ?? new Set<string>();
  const g = base.graph;
  const byPath = new Map(modules.map((m) => [m.path, m]));
  let mask: Value | undefined;
  let select: Value | undefined;
  const rowMask = (): Value => {
    mask ??= g.input(BGMV_NAMES.mask, "float32", ["batch", 1, K]);
    return mask;
  };
  const rowSelect = (): Value => {
    select ??= g.input(BGMV_NAMES.select, "float32", ["batch", S]);
    return select;
  };
  const stacks = (m: ModuleInfo) => ({
    A: g.input(BGMV_NAMES.A(m.path), "float32", [K, m.inFeatures]),
    B: g.input(BGMV_NAMES.B(m.path), "float32", [K, m.outFeatures]),
  });
  /** z + (P·G) ⊙ (z − bias): DoRA's factor on the row's output but its bias (see the file comment). */
  const doraScale = (z: Value, m: ModuleInfo, bias?: Value): Value => {
    const G = g.input(BGMV_NAMES.dora(m.path), "float32", [S, m.outFeatures]);
    const rowG = o.unsqueeze(o.matmul(rowSelect(), G), [1]); // [batch, 1, out]
    return o.add(z, o.mul(rowG, bias ? o.sub(z, bias) : z));
  };

  return {
    graph: g,
    adapted: modules,
    param: (name) => base.param(name),
    linear(x: Value, spec: LinearSpec): Value {
      if (spec.path === opts.lastPositionHead) x = o.slice(x, [-1], [Number.MAX_SAFE_INTEGER], [1]);
      let y = base.linear(x, spec);
      const m = byPath.get(spec.path);
      if (m?.kind === "linear") {
        const { A, B } = stacks(m);
        const h = o.mul(o.product(x, A, false, true), rowMask()); // (x·A_kᵀ) ⊙ M: [batch, seq, S·R]
        y = doraScale(o.add(y, o.matmul(h, B)), m, spec.bias ? base.param(`${spec.path}.bias`) : undefined);
      }
      // The trained bias delta comes after DoRA's factor, which never scales a bias.
      if (biasLayers.has(spec.path)) {
        const delta = g.input(BGMV_NAMES.bias(spec.path), "float32", [S, spec.outFeatures]);
        y = o.add(y, o.unsqueeze(o.matmul(rowSelect(), delta), [1])); // [batch, 1, out]
      }
      return y;
    },
    embedding(ids: Value, path: string): Value {
      const y = base.embedding(ids, path);
      const m = byPath.get(path);
      if (m?.kind !== "embedding") return y;
      const { A, B } = stacks(m);
      const rows = o.transpose(o.gather(A, ids, 1), [1, 2, 0]); // A_kᵀ[ids]: [batch, seq, S·R]
      return doraScale(o.add(y, o.matmul(o.mul(rows, rowMask()), B)), m);
    },
  };
}
