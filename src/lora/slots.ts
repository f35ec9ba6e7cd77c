/**
 * The slot table behind bgmv.ts: which adapter sits in which slot, and the stacked tensors fed to
 * the serving graph. Slot 0 is the base model. Each loaded adapter (or weighted mix) is turned once
 * into a SlotEntry (its Aₜ = Aᵀ and Bₜ = s·Bᵀ per module); the stacks are rebuilt only when the
 * table changes (a load, an unload, a new mix), never per request or per step.
 */
import type { TensorValue } from "../graph/runtime.js";
import type { ModuleInfo } from "../models/module.js";
import { LoraTsError } from "../util/errors.js";
import { type Adapter, loraKeys, validateAdapter } from "./adapter.js";
import { BGMV_NAMES } from "./bgmv.js";
import { adapterBias, trainedBiases } from "./bias.js";

/** One module of a slot: Aₜ [in, r] and Bₜ = s·Bᵀ [r, out], row-major. */
export interface SlotModule {
  r: number;
  At: Float32Array;
  Bt: Float32Array;
}

/** Everything one adapter (or mix) puts into its slot. */
export interface SlotEntry {
  modules: Map<string, SlotModule>;
  /** Per layer: the adapter's bias minus the base bias. */
  biasDelta: Map<string, Float32Array>;
  /** The highest rank of any module. */
  maxRank: number;
}

function transpose(data: Float32Array, rows: number, cols: number, scale = 1): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j]! * scale;
  }
  return out;
}

/**
 * The slot entry of an adapter, checked against the serving graph: every module it adapts must be
 * in `graphModules` and every bias it trains in `graphBiases`, or it is refused with one line (the
 * graph is built once; serving a module outside it would need a new session).
 */
export function slotEntry(
  adapter: Adapter,
  modelModules: readonly ModuleInfo[],
  modelType: string,
  graph: { modules: ReadonlySet<string>; biases: ReadonlySet<string> },
  baseBias: (path: string) => Float32Array,
): SlotEntry {
  const src = adapter.source ?? "adapter";
  const selected = validateAdapter(adapter, modelModules, { modelType });
  const modules = new Map<string, SlotModule>();
  let maxRank = 0;
  for (const s of selected) {
    if (!graph.modules.has(s.path)) {
      throw new LoraTsError(
        `${src}: adapts ${s.path}, which the serving graph does not cover (start the server with this adapter, or with --lora-modules including it)`,
      );
    }
    const keys = loraKeys(s.path, s.kind);
    const A = adapter.tensors.get(keys.A)!.data; // [r, in]
    const B = adapter.tensors.get(keys.B)!.data; // [out, r]
    modules.set(s.path, { r: s.r, At: transpose(A, s.r, s.in), Bt: transpose(B, s.out, s.r, s.scaling) });
    maxRank = Math.max(maxRank, s.r);
  }
  const biasDelta = new Map<string, Float32Array>();
  for (const b of trainedBiases(adapter.config, modelModules, selected)) {
    if (!graph.biases.has(b.path)) {
      throw new LoraTsError(
        `${src}: trains the bias of ${b.path}, which the serving graph does not cover (start the server with this adapter)`,
      );
    }
    const mine = adapterBias(adapter, b.path)!;
    const base = baseBias(b.path);
    biasDelta.set(
      b.path,
      mine.map((v, i) => v - base[i]!),
    );
  }
  return { modules, biasDelta, maxRank };
}

/**
 * A weighted mix, exact by rank concatenation: Aₜ = [Aₜ₁, Aₜ₂, …] (columns) and
 * Bₜ = [w₁·Bₜ₁; w₂·Bₜ₂; …] (rows), so Aₜ·Bₜ = Σ wᵢ·sᵢ·(Bᵢ·Aᵢ)ᵀ — as `combine --type cat`.
 */
export function mixEntry(parts: readonly { entry: SlotEntry; weight: number }[]): SlotEntry {
  const paths = new Set(parts.flatMap((p) => [...p.entry.modules.keys()]));
  const modules = new Map<string, SlotModule>();
  let maxRank = 0;
  for (const path of paths) {
    const mine = parts.flatMap((p) => {
      const m = p.entry.modules.get(path);
      return m ? [{ m, w: p.weight }] : [];
    });
    const r = mine.reduce((n, { m }) => n + m.r, 0);
    const inF = mine[0]!.m.At.length / mine[0]!.m.r;
    const outF = mine[0]!.m.Bt.length / mine[0]!.m.r;
    const At = new Float32Array(inF * r);
    const Bt = new Float32Array(r * outF);
    let col = 0;
    for (const { m, w } of mine) {
      for (let i = 0; i < inF; i++) At.set(m.At.subarray(i * m.r, (i + 1) * m.r), i * r + col);
      for (let k = 0; k < m.Bt.length; k++) Bt[col * outF + k] = m.Bt[k]! * w;
      col += m.r;
    }
    modules.set(path, { r, At, Bt });
    maxRank = Math.max(maxRank, r);
  }
  if (parts.some((p) => p.entry.biasDelta.size > 0))
    throw new LoraTsError("lora_mix: an adapter in the mix trains biases, which cannot be mixed");
  return { modules, biasDelta: new Map(), maxRank };
}

/**
 * Slot 0 is the base; entries take the lowest free slot. `stacks()` gives the graph feeds for the
 * whole table, rebuilt after a change.
 */
export class SlotTable {
  private readonly slots: (SlotEntry | null)[] = [null];
  private cached: Record<string, TensorValue> | null = null;

  constructor(
    /** The modules the serving graph adapts (bgmvContext's `modules`). */
    readonly graphModules: readonly ModuleInfo[],
    readonly graphBiases: readonly { path: string; size: number }[],
  ) {}

  /** Puts `entry` into the lowest free slot and returns its index. */
  add(entry: SlotEntry): number {
    let i = this.slots.indexOf(null, 1);
    if (i < 0) i = this.slots.push(null) - 1;
    this.slots[i] = entry;
    this.cached = null;
    return i;
  }

  free(slot: number): void {
    if (slot <= 0 || !this.slots[slot]) throw new LoraTsError(`slot ${slot} is not in use`);
    this.slots[slot] = null;
    while (this.slots.length > 1 && this.slots.at(-1) === null) this.slots.pop();
    this.cached = null;
  }

  /** Stacked A/B (and bias-delta) feeds for every slot; free slots and absent modules are zeros. */
  stacks(): Record<string, TensorValue> {
    if (this.cached) return this.cached;
    const n = this.slots.length;
    const feeds: Record<string, TensorValue> = {};
    for (const m of this.graphModules) {
      const r = Math.max(1, ...this.slots.map((e) => e?.modules.get(m.path)?.r ?? 0));
      const [inF, outF] = [m.inFeatures, m.outFeatures];
      const A = new Float32Array(n * inF * r);
      const B = new Float32Array(n * r * outF);
      this.slots.forEach((e, i) => {
        const sm = e?.modules.get(m.path);
        if (!sm) return;
        // Aₜ [in, r_slot] into [in, r] (zero columns beyond r_slot); Bₜ [r_slot, out] into [r, out].
        for (let row = 0; row < inF; row++)
          A.set(sm.At.subarray(row * sm.r, (row + 1) * sm.r), (i * inF + row) * r);
        B.set(sm.Bt, i * r * outF);
      });
      feeds[BGMV_NAMES.A(m.path)] = { dtype: "float32", dims: [n, inF, r], data: A };
      feeds[BGMV_NAMES.B(m.path)] = { dtype: "float32", dims: [n, r, outF], data: B };
    }
    for (const b of this.graphBiases) {
      const data = new Float32Array(n * b.size);
      this.slots.forEach((e, i) => {
        const d = e?.biasDelta.get(b.path);
        if (d) data.set(d, i * b.size);
      });
      feeds[BGMV_NAMES.bias(b.path)] = { dtype: "float32", dims: [n, b.size], data };
    }
    this.cached = feeds;
    return feeds;
  }
}
