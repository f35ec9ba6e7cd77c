/**
 * The train settings as a config file (YAML or JSON, keys = the long flag names with "_" for "-", e.g.
 * batch_size) and as commander's flags: both checked by one zod schema, so a problem is one line naming
 * the file and key, or the flag. `toTrainOptions` turns the merged settings into the trainer's options.
 */
import { readFileSync } from "node:fs";
import YAML from "yaml";
import { z } from "zod";
import { parseColumnMap } from "../data/columns.js";
import { parseLoraConfig } from "../lora/config.js";
import { targetModules } from "../lora/targets.js";
import type { TrainOptions } from "../train/trainer.js";
import { LoraTsError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";

const positiveInt = z.number().int().positive();
export const TrainConfigSchema = z
  .object({
    model: z.string(),
    data: z.string(),
    val_data: z.string(),
    val_fraction: z.number().min(0).lt(1),
    out: z.string(),
    mode: z.enum(["lora", "full"]),
    r: positiveInt,
    alpha: z.number().positive(),
    dropout: z.number().min(0).lt(1),
    target: z.union([z.string(), z.array(z.string())]),
    rslora: z.boolean(),
    dora: z.boolean(),
    /** PEFT's name for `dora`. */
    use_dora: z.boolean(),
    init: z.union([z.boolean(), z.string()]),
    bias: z.enum(["none", "all", "lora_only"]),
    lora_config: z.string(),
    lr: z.number().positive(),
    epochs: z.number().positive(),
    max_steps: positiveInt,
    batch_size: positiveInt,
    grad_accum: positiveInt,
    max_length: z.number().int().min(2),
    seed: z.number().int().min(0),
    eval_every: positiveInt,
    save_every: positiveInt,
    save_total_limit: positiveInt,
    resume: z.boolean(),
    force: z.boolean(),
    schedule: z.enum(["constant", "linear", "cosine"]),
    warmup_steps: z.number().int().min(0),
    weight_decay: z.number().min(0),
    max_grad_norm: z.number().positive(),
    train_on_inputs: z.boolean(),
    packing: z.boolean(),
    data_workers: positiveInt,
    columns: z.string(),
    split: z.string(),
    val_split: z.string(),
    threads: positiveInt,
    base_int8: z.boolean(),
    gradient_checkpointing: z.boolean(),
    memory_check: z.boolean(),
    data_cache: z.boolean(),
  })
  .partial()
  .strict();

export type TrainConfig = z.infer<typeof TrainConfigSchema>;

/** The parsed contents of a YAML (or .json) config file, null for an empty one; one-line errors. */
export function readConfigText(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new LoraTsError(`${path}: cannot read the config file`);
  }
  try {
    return (path.endsWith(".json") ? JSON.parse(text) : YAML.parse(text)) ?? null;
  } catch (e) {
    throw new LoraTsError(
      `${path}: not valid ${path.endsWith(".json") ? "JSON" : "YAML"} (${firstLine((e as Error).message)})`,
    );
  }
}

export function readConfigFile(path: string): TrainConfig {
  const parsed = TrainConfigSchema.safeParse(readConfigText(path) ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // An unknown key is the file's own text: quoted, so a line break in it stays on the line.
    if (issue.code === "unrecognized_keys") {
      const keys = issue.keys.map((k) => JSON.stringify(k)).join(", ");
      throw new LoraTsError(`${path}: unknown key${issue.keys.length > 1 ? "s" : ""} ${keys}`);
    }
    throw new LoraTsError(`${path}: ${issue.path.join(".") || "(top level)"}: ${firstLine(issue.message)}`);
  }
  return parsed.data;
}

/** A message's first line, with no stray \r (V8 and YAML quote the input raw). */
function firstLine(message: string): string {
  return (message.split("\n")[0] ?? "").replace(/\r/g, " ");
}

/** Flags (commander, camelCase) as config keys (snake_case), parsed to numbers where the schema says so. */
export function flagsToConfig(flags: Record<string, unknown>): TrainConfig {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined || k === "config" || k === "progress" || k === "report") continue;
    // Commander sets a --no-X flag's default, true, which would override a config file's false.
    if ((k === "memoryCheck" || k === "dataCache") && v === true) continue;
    const key = k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const shape = TrainConfigSchema.shape[key as keyof typeof TrainConfigSchema.shape];
    const isNumber = shape?.unwrap() instanceof z.ZodNumber;
    out[key] = isNumber && typeof v === "string" ? Number(v) : v;
  }
  const parsed = TrainConfigSchema.safeParse(out);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new LoraTsError(`--${String(issue.path[0] ?? "").replaceAll("_", "-")}: ${issue.message}`);
  }
  return parsed.data;
}

/** --target's text as PEFT's target_modules (see targetModules in lora/targets.ts). */
export const targetFlag = targetModules;

export function toTrainOptions(c: TrainConfig): TrainOptions {
  for (const key of ["model", "data", "out"] as const) {
    if (!c[key]) throw new LoraTsError(`train: --${key} is required (or "${key}:" in the config file)`);
  }
  if (c.epochs !== undefined && c.max_steps !== undefined)
    throw new LoraTsError("train: give --epochs or --max-steps, not both");
  if (c.dora !== undefined && c.use_dora !== undefined && c.dora !== c.use_dora)
    throw new LoraTsError("train: dora and use_dora disagree; give one of them");
  if ((c.dora ?? c.use_dora) && c.mode === "full")
    throw new LoraTsError(
      "train: --dora trains a LoRA adapter's magnitudes; it does not apply to --mode full",
    );
  const target = typeof c.target === "string" ? targetFlag(c.target) : c.target;
  return {
    model: c.model!,
    data: c.data!,
    out: c.out!,
    valData: c.val_data,
    valFraction: c.val_fraction,
    mode: c.mode,
    r: c.r,
    alpha: c.alpha,
    dropout: c.dropout,
    targets: target,
    rslora: c.rslora,
    dora: c.dora ?? c.use_dora,
    init: c.init as TrainOptions["init"],
    bias: c.bias,
    loraConfig: c.lora_config ? parseLoraConfig(readJsonFile(c.lora_config), c.lora_config) : undefined,
    lr: c.lr,
    epochs: c.epochs,
    maxSteps: c.max_steps,
    batchSize: c.batch_size,
    gradAccum: c.grad_accum,
    maxLength: c.max_length,
    seed: c.seed,
    evalEvery: c.eval_every,
    saveEvery: c.save_every,
    saveTotalLimit: c.save_total_limit,
    resume: c.resume,
    force: c.force,
    schedule: c.schedule,
    warmupSteps: c.warmup_steps,
    weightDecay: c.weight_decay,
    maxGradNorm: c.max_grad_norm,
    trainOnInputs: c.train_on_inputs,
    packing: c.packing,
    dataWorkers: c.data_workers,
    columns: c.columns === undefined ? undefined : parseColumnMap(c.columns),
    split: c.split,
    valSplit: c.val_split,
    threads: c.threads,
    baseInt8: c.base_int8,
    gradientCheckpointing: c.gradient_checkpointing,
    memoryCheck: c.memory_check,
    dataCache: c.data_cache,
  };
}
