/**
 * The stacked tensors behind bgmv.ts. Each loaded adapter (or weighted mix) is turned once into a
 * SlotEntry: per module its A [r, in] as PEFT stores it and s·Bᵀ [r, out], and for a DoRA adapter
 * its factor m / n minus one (dora.ts; n from the base weight, so once per load). For a batch, the entries
 * its rows use are stacked to a common rank and concatenated (A_k, B_k of bgmv.ts); the stacks are
 * cached per set of entries, so a steady batch feeds the same arrays every step.
 */
import type { TensorValue } from "../graph/runtime.js";
import type { ModuleInfo } from "../models/module.js";
import { LoraTsError } from "../util/errors.js";
import { type Adapter, loraKeys, validateAdapter } from "./adapter.js";
import { BGMV_NAMES } from "./bgmv.js";
import { adapterBias, trainedBiases } from "./bias.js";
import { moduleDoraFactor } from "./merge.js";

/** One module of an entry: A [r, in] and Bₜ = s·Bᵀ [r, out], row-major. */
export interface SlotModule {
  r: number;
  A: Float32Array;
  Bt: Float32Array;
  /** DoRA only: m / n − 1 per output (bgmv.ts's G row). */
  doraMinusOne?: Float32Array;
}

/** Everything one adapter (or mix) contributes to the stacks. */
export interface SlotEntry {
  /** Unique per entry, the stack cache's key. */
  readonly id: number;
  modules: Map<string, SlotModule>;
  /** Per layer: the adapter's bias minus the base bias. */
  biasDelta: Map<string, Float32Array>;
  /** The highest rank of any module. */
  maxRank: number;
}

let nextId = 1;

/** s·Bᵀ: B [out, r] → [r, out] times s. */
function scaledTranspose(B: Float32Array, out: number, r: number, s: number): Float32Array {
  const t = new Float32Array(out * r);
  for (let i = 0; i < out; i++) for (let k = 0; k < r; k++) t[k * out + i] = B[i * r + k]! * s;
  return t;
}

/**
 * The entry of an adapter, checked against the serving graph: every module it adapts must be in
 * `graph.modules` and every bias it trains in `graph.biases`, or it is refused with one line (the
 * graph is built once; a module outside it would need a new session).
 */
export function slotEntry(
  adapter: Adapter,
  modelModules: readonly ModuleInfo[],
  modelType: string,
  graph: { modules: ReadonlySet<string>; biases: ReadonlySet<string> },
  baseBias: (path: string) => Float32Array,
  /** The frozen weight of a module in its storage layout; read for DoRA adapters only. */
  baseWeight?: (path: string) => Float32Array,
): SlotEntry {
  const src = adapter.source ?? "adapter";
  const selected = validateAdapter(adapter, modelModules, { modelType });
  const modules = new Map<string, SlotModule>();
  let maxRank = 0;
  for (const s of selected) {
    if (!graph.modules.has(s.path)) {
      throw new LoraTsError(
        `${src}: adapts ${s.path}, which the serving graph does not cover (give this adapter at start-up, or include the module in --lora-modules)`,
      );
    }
    const keys = loraKeys(s.path, s.kind);
    const A = adapter.tensors.get(keys.A)!;
    const B = adapter.tensors.get(keys.B)!;
    const mod: SlotModule = { r: s.r, A: A.data, Bt: scaledTranspose(B.data, s.out, s.r, s.scaling) };
    if (adapter.config.use_dora) {
      if (!baseWeight) throw new LoraTsError(`${src}: a DoRA adapter needs the base weights to serve`);
      mod.doraMinusOne = moduleDoraFactor(adapter, s, baseWeight(s.path)).map((f) => f - 1);
    }
    modules.set(s.path, mod);
    maxRank = Math.max(maxRank, s.r);
  }
  const biasDelta = new Map<string, Float32Array>();
  for (const b of trainedBiases(adapter.config, modelModules, selected)) {
    if (!graph.biases.has(b.path)) {
      throw new LoraTsError(
        `${src}: trains the bias of ${b.path}, which the serving graph does not cover (give this adapter at start-up)`,
      );
    }
    const base = baseBias(b.path);
    biasDelta.set(
      b.path,
      adapterBias(adapter, b.path)!.map((v, i) => v - base[i]!),
    );
  }
  return { id: nextId++, modules, biasDelta, maxRank };
}

/**
 * A weighted mix, exact by rank concatenation: A = [A₁; A₂; …] and Bₜ = [w₁·Bₜ₁; w₂·Bₜ₂; …], so that
 * Bₜᵀ·A = Σ wᵢ·sᵢ·Bᵢ·Aᵢ — as `combine --type cat`.
 */
export function mixEntry(parts: readonly { entry: SlotEntry; weight: number; name?: string }[]): SlotEntry {
  if (parts.some((p) => p.entry.biasDelta.size > 0))
    throw new LoraTsError("lora_mix: an adapter in the mix trains biases, which cannot be mixed");
  // A DoRA factor rescales the whole output by its own direction's norm: a weighted sum of adapters
  // has no magnitude to rescale with, and stacking would silently drop it.
  const dora = parts.find((p) => [...p.entry.modules.values()].some((m) => m.doraMinusOne));
  if (dora)
    throw new LoraTsError(
      `lora_mix: ${dora.name ? `"${dora.name}" is` : "an adapter in the mix is"} a DoRA adapter, whose magnitudes cannot be mixed; request it alone`,
    );
  const paths = new Set(parts.flatMap((p) => [...p.entry.modules.keys()]));
  const modules = new Map<string, SlotModule>();
  let maxRank = 0;
  for (const path of paths) {
    const mine = parts.flatMap((p) => {
      const m = p.entry.modules.get(path);
      return m ? [{ m, w: p.weight }] : [];
    });
    const r = mine.reduce((n, { m }) => n + m.r, 0);
    const A = new Float32Array(mine.reduce((n, { m }) => n + m.A.length, 0));
    const Bt = new Float32Array(mine.reduce((n, { m }) => n + m.Bt.length, 0));
    let a = 0;
    let b = 0;
    for (const { m, w } of mine) {
      A.set(m.A, a);
      a += m.A.length;
      for (let k = 0; k < m.Bt.length; k++) Bt[b + k] = m.Bt[k]! * w;
      b += m.Bt.length;
    }
    modules.set(path, { r, A, Bt });
    maxRank = Math.max(maxRank, r);
  }
  return { id: nextId++, modules, biasDelta: new Map(), maxRank };
}

/** The stacked feeds for one set of entries, and the common rank R each entry's block has. */
export interface Stacks {
  feeds: Record<string, TensorValue>;
  rank: number;
}

/**
 * Builds and caches the stacks for sets of entries. The cache holds the most recently used sets up
 * to `maxBytes` in all; a set of one entry (all rows on one adapter) is the usual case.
 */
export class StackBuilder {
  private readonly cache = new Map<string, { stacks: Stacks; bytes: number }>();

  constructor(
    /** The modules the serving graph adapts (bgmvContext's `modules`). */
    readonly graphModules: readonly ModuleInfo[],
    readonly graphBiases: readonly { path: string; size: number }[],
    readonly maxBytes = 512 * 2 ** 20,
  ) {}

  /** Stacks for `entries` in this order (none: one all-zero block, for a batch of base rows). */
  stacks(entries: readonly SlotEntry[]): Stacks {
    const key = entries.map((e) => e.id).join(",");
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key); // re-insert: the Map's order is the recency order
      this.cache.set(key, hit);
      return hit.stacks;
    }
    const stacks = this.build(entries);
    const bytes = Object.values(stacks.feeds).reduce((n, t) => n + t.data.byteLength, 0);
    this.cache.set(key, { stacks, bytes });
    let total = [...this.cache.values()].reduce((n, c) => n + c.bytes, 0);
    for (const [k, c] of this.cache) {
      if (total <= this.maxBytes || k === key) break;
      this.cache.delete(k);
      total -= c.bytes;
    }
    return stacks;
  }

  /** Drops cached stacks that contain `entry` (it was unloaded). */
  forget(entry: SlotEntry): void {
    for (const k of [...this.cache.keys()]) if (k.split(",").includes(String(entry.id))) this.cache.delete(k);
  }

  private build(entries: readonly SlotEntry[]): Stacks {
    const S = Math.max(1, entries.length);
    const R = Math.max(1, ...entries.map((e) => e.maxRank));
    const feeds: Record<string, TensorValue> = {};
    for (const m of this.graphModules) {
      const [inF, outF] = [m.inFeatures, m.outFeatures];
      const A = new Float32Array(S * R * inF);
      const B = new Float32Array(S * R * outF);
      entries.forEach((e, i) => {
        const sm = e.modules.get(m.path);
        if (!sm) return;
        A.set(sm.A, i * R * inF); // rows r..R-1 of the block stay zero
        B.set(sm.Bt, i * R * outF);
      });
      feeds[BGMV_NAMES.A(m.path)] = { dtype: "float32", dims: [S * R, inF], data: A };
      feeds[BGMV_NAMES.B(m.path)] = { dtype: "float32", dims: [S * R, outF], data: B };
      const G = new Float32Array(S * outF); // zero (factor 1) but for DoRA entries
      entries.forEach((e, i) => {
        const g = e.modules.get(m.path)?.doraMinusOne;
        if (g) G.set(g, i * outF);
      });
      feeds[BGMV_NAMES.dora(m.path)] = { dtype: "float32", dims: [S, outF], data: G };
    }
    for (const b of this.graphBiases) {
      const data = new Float32Array(S * b.size);
      entries.forEach((e, i) => {
        const d = e.biasDelta.get(b.path);
        if (d) data.set(d, i * b.size);
      });
      feeds[BGMV_NAMES.bias(b.path)] = { dtype: "float32", dims: [S, b.size], data };
    }
    return { feeds, rank: R };
  }
}

/**
 * The per-row inputs for a batch whose row b uses entry `choice[b]` (an index into the stacked
 * entries, or -1 for the base model): the masks M and the one-hot choice P.
 */
export function rowFeeds(
  choice: readonly number[],
  stacks: Stacks,
  entries: number,
): Record<string, TensorValue> {
  const S = Math.max(1, entries);
  const R = stacks.rank;
  const mask = new Float32Array(choice.length * S * R);
  const select = new Float32Array(choice.length * S);
  choice.forEach((j, b) => {
    if (j < 0) return;
    mask.fill(1, (b * S + j) * R, (b * S + j + 1) * R);
    select[b * S + j] = 1;
  });
  return {
    ...stacks.feeds,
    [BGMV_NAMES.mask]: { dtype: "float32", dims: [choice.length, 1, S * R], data: mask },
    [BGMV_NAMES.select]: { dtype: "float32", dims: [choice.length, S], data: select },
  };
}
