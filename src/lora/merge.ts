/**
 * Merging on Float32Arrays, and combining adapters. The merged delta s·B·A itself (in each layer's
 * storage layout, as PEFT's get_delta_weight) is computed in layer.ts:
 *
 *   linear     W [out, in]:  W' = W + s·B·A                 (A [r, in], B [out, r])
 *   Conv1D     W [in, out]:  W' = W + (s·B·A)ᵀ              (fan_in_fan_out)
 *   embedding  W [vocab, dim]: W' = W + (B·A)ᵀ·s            (A [r, vocab], B [dim, r])
 *
 * A DoRA adapter (use_dora) merges to W' = (m / n) ⊙ (W + s·B·A) per output instead (dora.ts), which
 * is not W plus a delta that could be computed without W: mergeModule is the one entry point for
 * both. Combining refuses DoRA adapters (combineAdapters).
 */
import { LoraTsError } from "../util/errors.js";
import { type Adapter, type AdapterTensor, loraKeys, magnitudeKey, parseAdapterKey } from "./adapter.js";
import { type LoraConfig, scaling } from "./config.js";
import { doraFactor, doraMergedWeight } from "./dora.js";
import { deltaWeight, weightLayout } from "./layer.js";
import type { SelectedModule } from "./targets.js";

export { deltaWeight, type Matrix } from "./layer.js";

/** W += delta, in place. */
export function mergeInto(W: Float32Array, delta: Float32Array): Float32Array {
  if (W.length !== delta.length)
    throw new LoraTsError(`merge: weight has ${W.length} values, delta ${delta.length}`);
  for (let i = 0; i < W.length; i++) W[i]! += delta[i]!;
  return W;
}

/** W -= delta, in place: undoes mergeInto to float32 rounding. */
export function unmerge(W: Float32Array, delta: Float32Array): Float32Array {
  if (W.length !== delta.length)
    throw new LoraTsError(`unmerge: weight has ${W.length} values, delta ${delta.length}`);
  for (let i = 0; i < W.length; i++) W[i]! -= delta[i]!;
  return W;
}

/**
 * ΔW = s·B·A of one module of a LoRA adapter, in the base weight's layout; undefined if it has none.
 * A DoRA adapter's change is not a delta independent of W, so it is refused (use mergeModule).
 */
export function adapterDelta(
  adapter: Adapter,
  path: string,
  opts: { fanInFanOut?: boolean } = {},
): Float32Array | undefined {
  if (adapter.config.use_dora)
    throw new LoraTsError(
      `${adapter.source ?? "adapter"}: a DoRA adapter has no delta s·B·A alone; merge it with mergeModule`,
    );
  for (const kind of ["linear", "embedding"] as const) {
    const keys = loraKeys(path, kind);
    const A = adapter.tensors.get(keys.A);
    const B = adapter.tensors.get(keys.B);
    if (A && B) {
      return deltaWeight(A, B, scaling(adapter.config, path), weightLayout(kind, opts.fanInFanOut));
    }
  }
  return undefined;
}

/**
 * The merged weight of module `path`, in W's storage layout: W + s·B·A for LoRA, (m / n) ⊙ (W + s·B·A)
 * for DoRA. Undefined when the adapter does not adapt `path`. W may be overwritten (LoRA adds in place).
 */
export function mergeModule(
  adapter: Adapter,
  path: string,
  W: Float32Array,
  opts: { fanInFanOut?: boolean } = {},
): Float32Array | undefined {
  if (!adapter.config.use_dora) {
    const delta = adapterDelta(adapter, path, opts);
    return delta ? mergeInto(W, delta) : undefined;
  }
  for (const kind of ["linear", "embedding"] as const) {
    const keys = loraKeys(path, kind);
    const A = adapter.tensors.get(keys.A);
    const B = adapter.tensors.get(keys.B);
    if (!A || !B) continue;
    const m = doraMagnitude(adapter, path);
    return doraMergedWeight(m, W, A, B, scaling(adapter.config, path), weightLayout(kind, opts.fanInFanOut));
  }
  return undefined;
}

/**
 * f = m / ‖W + s·B·A‖ per output of module `s` of a DoRA adapter, with W its base weight in its
 * storage layout: what a server folds into the module's output (serve.ts, slots.ts).
 */
export function moduleDoraFactor(adapter: Adapter, s: SelectedModule, W: Float32Array): Float32Array {
  const keys = loraKeys(s.path, s.kind);
  const A = adapter.tensors.get(keys.A)!;
  const B = adapter.tensors.get(keys.B)!;
  return doraFactor(doraMagnitude(adapter, s.path), W, A, B, s.scaling, weightLayout(s.kind, s.fanInFanOut));
}

function doraMagnitude(adapter: Adapter, path: string): Float32Array {
  const m = adapter.tensors.get(magnitudeKey(path));
  if (!m)
    throw new LoraTsError(
      `${adapter.source ?? "adapter"}: ${path} has use_dora but no ${magnitudeKey(path)}`,
    );
  return m.data;
}

/** config.r, or the largest rank_pattern value (PEFT's `_check_add_weighted_adapter`). */
function maxRank(cfg: LoraConfig): number {
  return Math.max(cfg.r, ...Object.values(cfg.rank_pattern));
}

/**
 * A new adapter from several, as PEFT's add_weighted_adapter (peft/tuners/lora/model.py):
 *
 * - "linear" (all ranks equal): per module, with cᵢ = wᵢ·sᵢ,
 *   A' = Σ sign(cᵢ)·√|cᵢ|·Aᵢ and B' = Σ √|cᵢ|·Bᵢ. This is not the weighted sum of the deltas
 *   (there are cross terms Bᵢ·Aⱼ) unless a single weight is non-zero: weights [1, 0] reproduce the
 *   first adapter exactly.
 * - "cat": A' = [c₁·A₁; c₂·A₂; …] (rows), B' = [B₁, B₂, …] (columns), so
 *   B'·A' = Σ wᵢ·sᵢ·Bᵢ·Aᵢ exactly, with rank Σ rᵢ.
 *
 * The new config is the first adapter's with r = lora_alpha = the new rank (so s = 1: the scalings
 * are folded into the tensors), no rank/alpha patterns, use_rslora false and init true.
 * (PEFT keeps the first adapter's use_rslora, which would scale its result by √r; we do not.)
 * A module with a smaller rank than the new r is zero-padded, as PEFT's pre-allocated tensors are.
 */
export function combineAdapters(
  adapters: readonly Adapter[],
  weights: readonly number[],
  type: "linear" | "cat",
): Adapter {
  if (adapters.length === 0) throw new LoraTsError("combine: no adapters given");
  if (weights.length !== adapters.length) {
    throw new LoraTsError(`combine: ${adapters.length} adapters but ${weights.length} weights`);
  }
  if (type !== "linear" && type !== "cat")
    throw new LoraTsError(`combine: unknown combination type ${JSON.stringify(type)} (linear, cat)`);
  for (const w of weights)
    if (!Number.isFinite(w)) throw new LoraTsError(`combine: weight ${w} is not a finite number`);
  const name = (i: number): string => adapters[i]!.source ?? `adapter ${i + 1}`;
  const first = adapters[0]!.config;
  for (let i = 0; i < adapters.length; i++) {
    const c = adapters[i]!.config;
    // A trained magnitude belongs to its own direction (W + s·B·A): no sum of A's and B's keeps it.
    // PEFT's add_weighted_adapter does not refuse, but its result carries a fresh magnitude (‖W‖),
    // silently dropping the trained ones; refusing is the honest choice.
    if (c.use_dora)
      throw new LoraTsError(
        `combine: ${name(i)} is a DoRA adapter (use_dora), whose magnitudes cannot be combined; merge it into the model instead`,
      );
    if (c.bias !== "none")
      throw new LoraTsError(
        `combine: ${name(i)} trains biases (bias ${JSON.stringify(c.bias)}), which cannot be combined`,
      );
    for (const f of ["layers_to_transform", "layers_pattern", "exclude_modules"] as const) {
      if (JSON.stringify(c[f]) !== JSON.stringify(first[f])) {
        throw new LoraTsError(
          `combine: ${name(i)} has a different ${f} (${JSON.stringify(c[f])} vs ${JSON.stringify(first[f])})`,
        );
      }
    }
  }
  const ranks = adapters.map((a) => maxRank(a.config));
  let newRank: number;
  if (type === "linear") {
    if (new Set(ranks).size !== 1) {
      throw new LoraTsError(
        `combine linear: all adapters must have the same r, got ${ranks.join(", ")} (use cat)`,
      );
    }
    newRank = ranks[0]!;
  } else newRank = ranks.reduce((a, b) => a + b, 0);

  // target_modules: union of lists; regexes joined with "|"; a mix is refused (as PEFT).
  const tms = adapters.map((a) => a.config.target_modules);
  let targetModules: string[] | string;
  if (tms.every((t) => Array.isArray(t))) {
    targetModules = [...new Set(tms.flatMap((t) => t as string[]))];
  } else if (tms.every((t) => typeof t === "string")) {
    const uniq = [...new Set(tms as string[])];
    if (uniq.length > 1 && uniq.some((t) => t.toLowerCase() === "all-linear")) {
      throw new LoraTsError('combine: cannot join target_modules "all-linear" with other patterns');
    }
    targetModules = uniq.length === 1 ? uniq[0]! : uniq.map((t) => `(${t})`).join("|");
  } else {
    throw new LoraTsError("combine: target_modules must all be lists or all be strings");
  }

  // Modules, in first-seen order, with each adapter's A, B and scaling.
  type Entry = { A: AdapterTensor; B: AdapterTensor; s: number; w: number };
  const modules = new Map<string, { kind: "linear" | "embedding"; entries: Entry[] }>();
  adapters.forEach((ad, i) => {
    for (const key of ad.tensors.keys()) {
      const p = parseAdapterKey(key);
      if (p.role !== "A") {
        if (p.role !== "B")
          throw new LoraTsError(
            `combine: ${name(i)} has tensor ${JSON.stringify(key)}, which is not a LoRA A/B`,
          );
        continue;
      }
      const keys = loraKeys(p.path, p.kind!);
      const B = ad.tensors.get(keys.B);
      if (!B) throw new LoraTsError(`combine: ${name(i)} has ${keys.A} but no ${keys.B}`);
      let m = modules.get(p.path);
      if (!m) {
        m = { kind: p.kind!, entries: [] };
        modules.set(p.path, m);
      }
      if (m.kind !== p.kind)
        throw new LoraTsError(
          `combine: module ${p.path} is linear in one adapter and an embedding in another`,
        );
      m.entries.push({ A: ad.tensors.get(keys.A)!, B, s: scaling(ad.config, p.path), w: weights[i]! });
    }
  });

  const tensors = new Map<string, AdapterTensor>();
  for (const [path, { kind, entries }] of modules) {
    const n = entries[0]!.A.shape[1]!;
    const o = entries[0]!.B.shape[0]!;
    for (const e of entries) {
      if (e.A.shape[1] !== n || e.B.shape[0] !== o)
        throw new LoraTsError(`combine: module ${path} has different shapes across adapters`);
    }
    const A = new Float32Array(newRank * n);
    const B = new Float32Array(o * newRank);
    if (type === "linear") {
      const r = entries[0]!.A.shape[0]!;
      for (const e of entries) {
        if (e.A.shape[0] !== r)
          throw new LoraTsError(
            `combine linear: module ${path} has ranks ${entries.map((x) => x.A.shape[0]).join(", ")}`,
          );
      }
      const accA = new Float64Array(r * n);
      const accB = new Float64Array(o * r);
      for (const e of entries) {
        const c = e.w * e.s;
        const wB = Math.sqrt(Math.abs(c));
        const wA = c >= 0 ? wB : -wB;
        for (let i = 0; i < r * n; i++) accA[i]! += wA * e.A.data[i]!;
        for (let i = 0; i < o * r; i++) accB[i]! += wB * e.B.data[i]!;
      }
      A.set(accA); // rows 0..r-1; the rest (if the config rank is larger) stay zero
      for (let i = 0; i < o; i++) for (let k = 0; k < r; k++) B[i * newRank + k] = accB[i * r + k]!;
    } else {
      let off = 0;
      for (const e of entries) {
        const r = e.A.shape[0]!;
        const c = e.w * e.s;
        for (let i = 0; i < r * n; i++) A[off * n + i] = c * e.A.data[i]!;
        for (let i = 0; i < o; i++)
          for (let k = 0; k < r; k++) B[i * newRank + off + k] = e.B.data[i * r + k]!;
        off += r;
      }
    }
    const keys = loraKeys(path, kind);
    tensors.set(keys.A, { shape: [newRank, n], data: A, dtype: "float32" });
    tensors.set(keys.B, { shape: [o, newRank], data: B, dtype: "float32" });
  }

  const config: LoraConfig = {
    ...first,
    raw: { ...first.raw },
    r: newRank,
    lora_alpha: newRank,
    use_rslora: false,
    rank_pattern: {},
    alpha_pattern: {},
    init_lora_weights: true,
    target_modules: targetModules,
  };
  return { config, tensors };
}
