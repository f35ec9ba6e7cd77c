/**
 * The plan of a `lora-ts sweep` (the LoRA paper's ablation, Hu et al. 2021, Tables 5 and 6): which
 * runs make the grid (target set × r × seed), their folder names, and, in budget mode, the r each
 * target set gets so that its trainable count is closest to the budget. Pure: the model enters as its
 * module list; counts come from countParams (layer.ts's r·(in+out)), never recomputed here.
 */
import { createHash } from "node:crypto";
import { makeLoraConfig } from "../lora/config.js";
import { countParams, type ModuleInfo, selectTargets } from "../lora/targets.js";
import { LoraTsError } from "../util/errors.js";

/** One --targets value as given, and what train's --target makes of it. */
export interface TargetSet {
  /** The text the user gave ("q_proj,v_proj", "all-linear", a regex): the label in tables. */
  label: string;
  /** PEFT's target_modules: a list of names, or a string (all-linear or a full-match regex). */
  value: string | string[];
}

/** A run of the grid. */
export interface RunSpec {
  /** Folder name under OUT/runs/: unique within a sweep and stable across invocations. */
  name: string;
  targets: TargetSet;
  r: number;
  seed: number;
  /** r·Σ(in+out) over the selected modules; null when the target set selects nothing. */
  trainable: number | null;
  /** Why trainable is null (the selection error, one line). */
  note?: string;
}

/** Trainable parameters of `targets` at rank r on a model with these modules (throws a one-line error when it selects nothing). */
export function trainableCount(
  modules: readonly ModuleInfo[],
  targets: TargetSet,
  r: number,
  modelType?: string,
): number {
  const cfg = makeLoraConfig({ r, target_modules: targets.value });
  return countParams(selectTargets(cfg, modules, { modelType }), 0, 0, cfg.use_dora).trainable_params;
}

/**
 * Budget mode: the r ≥ 1 whose trainable count is closest to `budget` (ties: the smaller r). The count
 * is r times the count at r = 1, so only the two integers around budget / count(1) can be closest.
 */
export function budgetRank(countAt: (r: number) => number, budget: number): number {
  const per = countAt(1);
  if (!(per > 0)) throw new LoraTsError("budget: the target set has no trainable parameters");
  const lo = Math.max(1, Math.floor(budget / per));
  const candidates = [lo, lo + 1];
  let best = candidates[0]!;
  for (const r of candidates) {
    const d = Math.abs(countAt(r) - budget);
    const bestD = Math.abs(countAt(best) - budget);
    if (d < bestD) best = r;
  }
  return best;
}

/** A folder name for a target set: its text with ',' as '+', anything unusual as '_' (then a short hash, so two sets never share a name). */
export function targetSlug(label: string): string {
  const plain = label.replaceAll(",", "+");
  const slug = plain.replace(/[^\w.+-]/g, "_").slice(0, 60);
  if (slug === plain && slug.length > 0) return slug;
  return `${slug}-${createHash("sha256").update(label).digest("hex").slice(0, 8)}`;
}

export function runName(targets: TargetSet, r: number, seed: number): string {
  return `${targetSlug(targets.label)}-r${r}-s${seed}`;
}

export interface GridInput {
  modules: readonly ModuleInfo[];
  modelType?: string;
  targets: readonly TargetSet[];
  /** The ranks (r mode); ignored when budget is set. */
  ranks: readonly number[];
  budget?: number;
  /** Seeds: firstSeed, firstSeed+1, …, firstSeed+seeds-1. */
  seeds: number;
  firstSeed: number;
}

/**
 * The runs, target set by target set, then r, then seed. In budget mode each target set gets its
 * budgetRank, and one that selects nothing is an error (no r can be chosen for it); in r mode such a
 * set keeps its runs, with trainable null and the reason in `note` (they are run, and fail as train
 * fails, so that the sweep records them).
 */
export function planGrid(g: GridInput): RunSpec[] {
  const runs: RunSpec[] = [];
  for (const t of g.targets) {
    let note: string | undefined;
    const count = (r: number): number | null => {
      try {
        return trainableCount(g.modules, t, r, g.modelType);
      } catch (e) {
        if (!(e instanceof LoraTsError)) throw e;
        note = e.message;
        return null;
      }
    };
    let ranks: readonly number[] = g.ranks;
    if (g.budget !== undefined) {
      if (count(1) === null) throw new LoraTsError(`--targets ${JSON.stringify(t.label)}: ${note}`);
      ranks = [budgetRank((r) => count(r)!, g.budget)];
    }
    for (const r of ranks) {
      const trainable = count(r);
      for (let s = 0; s < g.seeds; s++) {
        const seed = g.firstSeed + s;
        runs.push({
          name: runName(t, r, seed),
          targets: t,
          r,
          seed,
          trainable,
          ...(trainable === null && note !== undefined ? { note } : {}),
        });
      }
    }
  }
  const names = runs.map((x) => x.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined)
    throw new LoraTsError(
      `sweep: two runs would share the folder runs/${dup} (a target set or r given twice?)`,
    );
  return runs;
}

/** "1,2,4,8,64" → [1, 2, 4, 8, 64]: positive integers, no repeats. */
export function parseRanks(flag: string, text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const rs = parts.map(Number);
  if (parts.some((p, i) => p === "" || !Number.isInteger(rs[i]) || rs[i]! < 1))
    throw new LoraTsError(`${flag}: expected comma-separated positive integers, got ${JSON.stringify(text)}`);
  const dup = rs.find((r, i) => rs.indexOf(r) !== i);
  if (dup !== undefined) throw new LoraTsError(`${flag}: r=${dup} is given twice`);
  return rs;
}
