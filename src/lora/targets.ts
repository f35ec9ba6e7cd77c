/**
 * Which modules of a model get an adapter, decided exactly as PEFT does
 * (peft/tuners/tuners_utils.py `check_target_module_exists`), and the trainable-parameter count.
 *
 * - exclude_modules first: a string is a full-match regex; a list matches the exact name or a ".suffix".
 * - target_modules as a string: a full-match regex over the module path ("all-linear": every linear
 *   layer except the output head, as PEFT's `_maybe_include_all_linear_layers`).
 * - target_modules as a list: the exact path, or a path ending in "." + entry. Only in the suffix case,
 *   layers_to_transform restricts matches to layer indices: the index is the first number segment
 *   after `<layers_pattern>.` (or, without a pattern, the first "<name>.<digits>." in the path).
 * - rank_pattern / alpha_pattern give per-module r / alpha (config.ts `rankFor`).
 * - PEFT sets fan_in_fan_out per layer type whatever the config says (Conv1D: true, Linear: false),
 *   so a module's layout comes from ModuleInfo.fanInFanOut.
 */
import type { ModuleInfo } from "../models/module.js";
import { LoraTsError } from "../util/errors.js";
import { ALL_LINEAR, alphaFor, defaultTargets, type LoraConfig, rankFor, scaling } from "./config.js";
import { doraParamCount } from "./dora.js";
import { loraParamCount } from "./layer.js";

export type { ModuleInfo } from "../models/module.js";

export interface SelectedModule {
  path: string;
  kind: "linear" | "embedding";
  r: number;
  alpha: number;
  scaling: number;
  fanInFanOut: boolean;
  /** lora_A is [r, in] (embedding: lora_embedding_A [r, vocab]). */
  in: number;
  /** lora_B is [out, r] (embedding: lora_embedding_B [dim, r]). */
  out: number;
}

/** Short names ("q_proj", "lm_head") of the modules, de-duplicated, in first-seen order. */
export function shortModuleNames(modules: readonly ModuleInfo[]): string[] {
  return [...new Set(modules.map((m) => m.path.slice(m.path.lastIndexOf(".") + 1)))];
}

function fullMatch(pattern: string, s: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(s);
}

function listMatch(list: readonly string[], path: string): boolean {
  return list.includes(path) || list.some((t) => path.endsWith(`.${t}`));
}

/** Layer index of `path` as PEFT finds it, or undefined. */
export function layerIndexOf(path: string, layersPattern: string[] | string | null): number | undefined {
  const patterns =
    layersPattern === null ? [] : typeof layersPattern === "string" ? [layersPattern] : layersPattern;
  if (patterns.length === 0 || (typeof layersPattern === "string" && layersPattern.length === 0)) {
    const m = /^.*?\.[^.]*\.(\d+)\./.exec(path);
    return m ? Number(m[1]) : undefined;
  }
  for (const p of patterns) {
    const m = new RegExp(`^.*?\\.(?:${p})\\.(\\d+)\\.`).exec(path);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function isExcluded(cfg: LoraConfig, path: string): boolean {
  const ex = cfg.exclude_modules;
  if (ex === null) return false;
  if (typeof ex === "string") return ex.length > 0 && fullMatch(ex, path);
  return listMatch(ex, path);
}

/**
 * Whether PEFT would put an adapter on `m` under `cfg` (target_modules must be resolved, not null).
 */
export function isTargeted(cfg: LoraConfig, m: ModuleInfo): boolean {
  const tm = cfg.target_modules;
  if (tm === null) throw new LoraTsError("LoRA config has no target_modules");
  if (isExcluded(cfg, m.path)) return false;
  if (typeof tm === "string") {
    if (tm.toLowerCase() === ALL_LINEAR) return m.kind === "linear" && !m.isOutputHead;
    return fullMatch(tm, m.path);
  }
  if (tm.includes(m.path)) return true;
  if (!tm.some((t) => m.path.endsWith(`.${t}`))) return false;
  const ltt = cfg.layers_to_transform;
  if (ltt === null || (Array.isArray(ltt) && ltt.length === 0)) return true;
  const idx = layerIndexOf(m.path, cfg.layers_pattern);
  if (idx === undefined) return false;
  return typeof ltt === "number" ? idx === ltt : ltt.includes(idx);
}

/**
 * The modules that get an adapter, in model order, with their rank, alpha and scaling. Errors (one
 * line each): a target_modules entry (or regex) that names no module of the model, listing the
 * module names the model has; a selection left empty by exclude_modules / layers_to_transform.
 * With target_modules null, PEFT's default for `opts.modelType` is used.
 */
export function selectTargets(
  cfg: LoraConfig,
  modules: readonly ModuleInfo[],
  opts: { modelType?: string } = {},
): SelectedModule[] {
  if (cfg.target_modules === null) {
    if (opts.modelType === undefined) {
      throw new LoraTsError("LoRA config has no target_modules and no model type to take the default from");
    }
    cfg = { ...cfg, target_modules: defaultTargets(opts.modelType) };
  }
  const tm = cfg.target_modules!;
  const names = (): string => shortModuleNames(modules).join(", ");
  if (typeof tm === "string") {
    const isAll = tm.toLowerCase() === ALL_LINEAR;
    const hit = isAll
      ? modules.some((m) => m.kind === "linear" && !m.isOutputHead)
      : modules.some((m) => fullMatch(tm, m.path));
    if (!hit) {
      throw new LoraTsError(
        isAll
          ? `LoRA target_modules "all-linear": the model has no linear layers besides the output head (modules: ${names()})`
          : `LoRA target_modules regex ${JSON.stringify(tm)} matches no module of the model (modules: ${names()})`,
      );
    }
  } else {
    if (tm.length === 0) throw new LoraTsError("LoRA target_modules is an empty list");
    for (const t of tm) {
      if (!modules.some((m) => m.path === t || m.path.endsWith(`.${t}`))) {
        throw new LoraTsError(
          `LoRA target_modules entry ${JSON.stringify(t)} matches no module of the model (modules: ${names()})`,
        );
      }
    }
  }
  const out: SelectedModule[] = [];
  for (const m of modules) {
    if (!isTargeted(cfg, m)) continue;
    const r = rankFor(cfg, m.path);
    out.push({
      path: m.path,
      kind: m.kind,
      r,
      alpha: alphaFor(cfg, m.path),
      scaling: scaling(cfg, m.path),
      fanInFanOut: m.kind === "linear" && m.fanInFanOut === true,
      in: m.inFeatures,
      out: m.outFeatures,
    });
  }
  if (out.length === 0) {
    const notes: string[] = [];
    if (cfg.exclude_modules !== null) notes.push(`exclude_modules ${JSON.stringify(cfg.exclude_modules)}`);
    if (cfg.layers_to_transform !== null)
      notes.push(`layers_to_transform ${JSON.stringify(cfg.layers_to_transform)}`);
    if (cfg.layers_pattern !== null) notes.push(`layers_pattern ${JSON.stringify(cfg.layers_pattern)}`);
    throw new LoraTsError(
      `LoRA target_modules ${JSON.stringify(tm)} select no module once ${notes.join(" and ") || "filters"} are applied`,
    );
  }
  return out;
}

export interface ParamCount {
  trainable_params: number;
  total_params: number;
  trainable_percent: number;
  modules: { name: string; in: number; out: number; r: number; params: number }[];
}

/**
 * Trainable parameters per adapted module (layer.ts: r·(in+out); embedding: r·(vocab+dim); with
 * DoRA also the magnitude's out, dora.ts, which PEFT counts too). As PEFT's
 * print_trainable_parameters, the total counts every parameter of the adapted model, base plus
 * adapters, and the percentage is 100·trainable/total. `extraTrainable` adds parameters that are
 * trainable but already counted in the base (biases with bias="all" / "lora_only").
 */
export function countParams(
  selected: readonly SelectedModule[],
  baseParams: number,
  extraTrainable = 0,
  dora = false,
): ParamCount {
  const modules = selected.map((s) => ({
    name: s.path,
    in: s.in,
    out: s.out,
    r: s.r,
    params: dora ? doraParamCount(s.r, s.in, s.out) : loraParamCount(s.r, s.in, s.out),
  }));
  const lora = modules.reduce((a, m) => a + m.params, 0);
  const trainable = lora + extraTrainable;
  const total = baseParams + lora;
  return {
    trainable_params: trainable,
    total_params: total,
    trainable_percent: total > 0 ? (100 * trainable) / total : 0,
    modules,
  };
}

/** A regex metacharacter: a --target string holding one is a regex, as PEFT reads a string. */
const REGEX_CHARS = /[\\^$*+?()[\]{}|]/;

/**
 * --target (or "target:" as a string in a config file): "all-linear", a full-match regex over module
 * paths when it holds a regex metacharacter, else comma-separated module names (exact or ".suffix").
 */
export function targetModules(t: string): string | string[] {
  if (t === "all-linear" || REGEX_CHARS.test(t)) return t;
  return t.split(",").map((name) => name.trim());
}
