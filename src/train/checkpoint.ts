/**
 * Checkpoints: `OUT/checkpoint-N` folders holding what a run needs to go on exactly as an uninterrupted
 * one would: the trained values (adapter files, or a full model.safetensors), the AdamW moments
 * (optimizer.safetensors) and trainer_state.json (step, data-loader position, optimizer step, mode,
 * total steps, and the settings that shape the run, which a resume must repeat).
 *
 * A kill at any moment leaves every checkpoint-N complete or absent: a checkpoint is written in a
 * temporary folder that is renamed into place (writeDirAtomic), and removed by renaming it away first
 * (removeDirAtomic). What such a kill leaves are temporary names, which a resumed run removes.
 */
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { DataLoader } from "../data/batching.js";
import { openSafetensors, writeSafetensors } from "../io/safetensors.js";
import type { Adapter } from "../lora/adapter.js";
import { loadAdapter, writeAdapterFiles } from "../lora/adapter-files.js";
import { type LoraConfig, loraConfigToJson } from "../lora/config.js";
import type { HfModel } from "../models/assemble-model.js";
import { removeDirAtomic, writeDirAtomic, writeJsonAtomic } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";
import type { AdamW } from "./optimizer.js";
import type { TrainStep } from "./train-graph.js";

export const STATE_FILE = "trainer_state.json";
const OPTIMIZER_FILE = "optimizer.safetensors";

/**
 * The settings that decide what a run computes (besides the LoRA settings, which the checkpoint's
 * adapter_config.json holds). Absent from checkpoints written before they were recorded.
 */
export interface RunSettings {
  /** --max-steps and --epochs as given (null: not given); the total is TrainerState.totalSteps. */
  maxSteps: number | null;
  epochs: number | null;
  lr: number;
  schedule: string;
  warmupSteps: number;
  weightDecay: number;
  maxGradNorm: number;
  batchSize: number;
  gradAccum: number;
  seed: number;
  /** After the cap by the model's context. */
  maxLength: number;
  /** Of --data (0 when --val-data is given: the whole file trains). */
  valFraction: number;
  trainOnInputs: boolean;
  packing: boolean;
  baseInt8: boolean;
  /** The path is only for messages; the content hash is compared. */
  data: string;
  dataSha256: string;
}

export interface TrainerState {
  step: number;
  loader: ReturnType<DataLoader["state"]>;
  optimizer: { step: number };
  mode: "lora" | "full";
  totalSteps: number;
  settings?: RunSettings;
}

/** Checkpoint directories in `out` (those with a state file), oldest first. */
export function listCheckpoints(out: string): { dir: string; step: number }[] {
  if (!existsSync(out)) return [];
  return readdirSync(out)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && existsSync(join(out, m[0], STATE_FILE)))
    .map((m) => ({ dir: join(out, m[0]), step: Number(m[1]) }))
    .sort((a, b) => a.step - b.step);
}

/** The full model's weights, named as in the checkpoint (a tied head is not stored twice). */
export function writeFullModel(dir: string, model: HfModel, step: TrainStep, values: Float32Array[]): void {
  for (const f of readdirSync(model.dir)) {
    const isWeights = f.endsWith(".safetensors") || f === "model.safetensors.index.json";
    if (!isWeights && statSync(join(model.dir, f)).isFile() && !existsSync(join(dir, f))) {
      copyFileSync(join(model.dir, f), join(dir, f));
    }
  }
  writeSafetensors(
    join(dir, "model.safetensors"),
    step.params.map((p, i) => ({
      name: p.name,
      dtype: "float32" as const,
      shape: p.shape,
      data: values[i]!,
    })),
    { format: "pt" },
  );
}

export interface CheckpointParts {
  model: HfModel;
  step: TrainStep;
  values: Float32Array[];
  adapter: Adapter | null;
  optimizer: AdamW;
}

/**
 * For the crash tests only: LORA_TS_TEST_SLOW_CHECKPOINT_MS=N sleeps N/2 ms after the trained values
 * and again after the optimizer state, so that a kill can land while a checkpoint is half-written.
 */
function slowCheckpointMs(): number {
  const ms = Number(process.env["LORA_TS_TEST_SLOW_CHECKPOINT_MS"] ?? 0);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

export async function saveCheckpoint(dir: string, state: TrainerState, p: CheckpointParts): Promise<void> {
  const slow = slowCheckpointMs();
  await writeDirAtomic(
    dir,
    async (tmp) => {
      if (p.adapter) writeAdapterFiles(tmp, p.adapter);
      else writeFullModel(tmp, p.model, p.step, p.values);
      if (slow) await sleep(slow / 2);
      const opt = p.optimizer.state();
      const tensors = opt.m.flatMap((m, i) => [
        { name: `m.${i}`, dtype: "float32" as const, shape: [m.length], data: m },
        { name: `v.${i}`, dtype: "float32" as const, shape: [opt.v[i]!.length], data: opt.v[i]! },
      ]);
      writeSafetensors(join(tmp, OPTIMIZER_FILE), tensors, { step: String(opt.step) });
      if (slow) await sleep(slow / 2);
      writeJsonAtomic(join(tmp, STATE_FILE), state);
    },
    { replace: true },
  );
}

/**
 * HF's save_total_limit: keeps the newest `keep` checkpoints in `out` and deletes the older ones.
 * Called after a checkpoint is complete, so the newest is never one being written. Returns the
 * folders removed.
 */
export function pruneCheckpoints(out: string, keep: number): string[] {
  const all = listCheckpoints(out);
  const old = all.slice(0, Math.max(0, all.length - keep));
  for (const c of old) removeDirAtomic(c.dir);
  return old.map((c) => c.dir);
}

export function readState(dir: string): TrainerState {
  const path = join(dir, STATE_FILE);
  try {
    return JSON.parse(readFileSync(path, "utf8")) as TrainerState;
  } catch (e) {
    throw new LoraTsError(
      `${path}: cannot read the checkpoint state (${(e as Error).message.split("\n")[0]})`,
    );
  }
}

function readOptimizer(path: string, n: number, step: number) {
  const f = openSafetensors(path);
  try {
    const m = Array.from({ length: n }, (_, i) => f.readFloat32(`m.${i}`));
    const v = Array.from({ length: n }, (_, i) => f.readFloat32(`v.${i}`));
    return { step, m, v };
  } finally {
    f.close();
  }
}

/**
 * Reads every part of a checkpoint (state, trained values, optimizer moments) and returns its state;
 * throws if any part is missing or unreadable. For checks: a resume reads the parts it needs itself.
 */
export function checkCheckpoint(dir: string): TrainerState {
  const state = readState(dir);
  if (!Number.isInteger(state.step) || !Number.isInteger(state.totalSteps) || !state.loader)
    throw new LoraTsError(`${join(dir, STATE_FILE)}: not a checkpoint state`);
  if (state.mode === "lora") loadAdapter(dir);
  else {
    const f = openSafetensors(join(dir, "model.safetensors"));
    for (const name of f.tensors.keys()) f.read(name);
    f.close();
  }
  const opt = openSafetensors(join(dir, OPTIMIZER_FILE));
  const n = opt.tensors.size / 2;
  opt.close();
  if (!Number.isInteger(n)) throw new LoraTsError(`${join(dir, OPTIMIZER_FILE)}: unpaired moments`);
  readOptimizer(join(dir, OPTIMIZER_FILE), n, state.optimizer.step);
  return state;
}

/** What a run being resumed is: its settings and the objects the checkpoint's contents go into. */
export interface ResumeTarget {
  mode: "lora" | "full";
  totalSteps: number;
  settings: RunSettings;
  /** LoRA mode: the run's LoRA settings, compared with the checkpoint's adapter_config.json. */
  loraConfig: LoraConfig | null;
  step: TrainStep;
  values: Float32Array[];
  adapter: Adapter | null;
  optimizer: AdamW;
  loader: DataLoader;
}

/**
 * Loads the newest checkpoint in `out` into `run` and returns the step it was saved at. A checkpoint
 * saved with other settings is refused (one line naming each changed flag), since going on from it
 * would silently not be the run either set of settings describes.
 */
export function resumeFrom(out: string, run: ResumeTarget): { dir: string; step: number } {
  const last = listCheckpoints(out).at(-1);
  if (!last) throw new LoraTsError(`${out}: --resume given but there is no checkpoint to resume from`);
  const state = readState(last.dir);
  if (state.mode !== run.mode)
    throw new LoraTsError(`${last.dir}: a ${state.mode} checkpoint cannot resume a ${run.mode} run`);
  const saved = run.mode === "lora" ? loadAdapter(last.dir) : null;
  const changes = settingsChanges(
    { totalSteps: state.totalSteps, settings: state.settings, loraConfig: saved?.config ?? null },
    { totalSteps: run.totalSteps, settings: run.settings, loraConfig: run.loraConfig },
  );
  if (changes.length > 0) throw new LoraTsError(describeChanges(last.dir, changes));

  if (saved) {
    run.step.params.forEach((p, i) => {
      const t = saved.tensors.get(p.name);
      if (!t || t.data.length !== run.values[i]!.length)
        throw new LoraTsError(`${last.dir}: checkpoint does not match this run (${p.name})`);
      run.values[i]!.set(t.data);
    });
    if (run.adapter) run.adapter.config = saved.config;
  } else {
    const f = openSafetensors(join(last.dir, "model.safetensors"));
    run.step.params.forEach((p, i) => {
      run.values[i]!.set(f.readFloat32(p.name));
    });
    f.close();
  }
  run.optimizer.loadState(
    readOptimizer(join(last.dir, OPTIMIZER_FILE), run.values.length, state.optimizer.step),
  );
  run.loader.restore(state.loader);
  return { dir: last.dir, step: state.step };
}

/** One setting that differs: how each run gave it (e.g. "--lr 0.001"), and why it matters if not plain. */
export interface Change {
  old: string;
  now: string;
  why?: string;
}

interface Shape {
  totalSteps: number;
  settings?: RunSettings;
  loraConfig: LoraConfig | null;
}

/** The plain settings, compared value by value; booleans are switches (--packing / no --packing). */
const FLAGS: [keyof RunSettings, string][] = [
  ["lr", "--lr"],
  ["schedule", "--schedule"],
  ["warmupSteps", "--warmup-steps"],
  ["weightDecay", "--weight-decay"],
  ["maxGradNorm", "--max-grad-norm"],
  ["batchSize", "--batch-size"],
  ["gradAccum", "--grad-accum"],
  ["seed", "--seed"],
  ["maxLength", "--max-length"],
  ["valFraction", "--val-fraction"],
  ["trainOnInputs", "--train-on-inputs"],
  ["packing", "--packing"],
  ["baseInt8", "--base-int8"],
];

/** adapter_config.json keys as the flags that set them; base_model_name_or_path may move and is not compared. */
const LORA_FLAGS: Record<string, string> = {
  r: "--r",
  lora_alpha: "--alpha",
  lora_dropout: "--dropout",
  target_modules: "--target",
  use_rslora: "--rslora",
  use_dora: "--dora",
  init_lora_weights: "init",
  bias: "--bias",
};

function asFlag(flag: string, v: unknown): string {
  if (typeof v === "boolean" && flag.startsWith("--")) return v ? flag : `no ${flag}`;
  if (Array.isArray(v)) return `${flag} ${v.join(",")}`;
  return `${flag} ${typeof v === "object" ? JSON.stringify(v) : String(v)}`;
}

function stepsAs(totalSteps: number, s?: RunSettings): string {
  if (s?.maxSteps != null) return `--max-steps ${s.maxSteps}`;
  if (s) return `--epochs ${s.epochs ?? 1} (${totalSteps} steps)`;
  return `${totalSteps} steps`;
}

/**
 * The differences between the run a checkpoint was saved by and this one. A checkpoint without a
 * settings record (older versions) is compared on what it has: total steps and adapter_config.json.
 */
export function settingsChanges(saved: Shape, now: Shape & { settings: RunSettings }): Change[] {
  const changes: Change[] = [];
  if (saved.totalSteps !== now.totalSteps)
    changes.push({
      old: stepsAs(saved.totalSteps, saved.settings),
      now: stepsAs(now.totalSteps, now.settings),
      why: "the learning-rate schedule depends on it",
    });
  const s = saved.settings;
  if (s) {
    if (s.dataSha256 !== now.settings.dataSha256)
      changes.push({
        old: `--data ${s.data} (sha256 ${s.dataSha256.slice(0, 12)})`,
        now: `--data ${now.settings.data} (sha256 ${now.settings.dataSha256.slice(0, 12)})`,
        why: "a different file content",
      });
    for (const [key, flag] of FLAGS)
      if (s[key] !== undefined && s[key] !== now.settings[key])
        changes.push({ old: asFlag(flag, s[key]), now: asFlag(flag, now.settings[key]) });
  }
  if (saved.loraConfig && now.loraConfig) {
    const a = loraConfigToJson(saved.loraConfig);
    const b = loraConfigToJson(now.loraConfig);
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (key === "base_model_name_or_path" || JSON.stringify(a[key]) === JSON.stringify(b[key])) continue;
      const flag = LORA_FLAGS[key] ?? `adapter_config.json "${key}"`;
      changes.push({ old: asFlag(flag, a[key] ?? null), now: asFlag(flag, b[key] ?? null) });
    }
  }
  return changes;
}

/** The one-line refusal: "--resume: DIR was saved by a run with A, B; this run says A' (why), B'. ..." */
export function describeChanges(dir: string, changes: Change[]): string {
  const old = changes.map((c) => c.old).join(", ");
  const now = changes.map((c) => (c.why ? `${c.now} (${c.why})` : c.now)).join(", ");
  return (
    `--resume: ${dir} was saved by a run with ${old}; this run says ${now}. ` +
    "Give the same settings, or start a new run with --force."
  );
}
