/**
 * `lora-ts train` and `lora-ts eval`. Flags and config files (YAML or JSON, keys = the long flag
 * names with "_" for "-", e.g. batch_size) mean the same; a flag given on the command line wins.
 * Config files are checked by a zod schema, and any problem is one line naming the file and the key.
 */
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import YAML from "yaml";
import { z } from "zod";
import { describeData } from "../data/examples.js";
import { parseLoraConfig } from "../lora/config.js";
import { evaluate } from "../train/evaluate.js";
import type { TrainerEvents } from "../train/events.js";
import { runMetricsLog } from "../train/metrics-log.js";
import { progressReporter } from "../train/progress.js";
import { reportEvents } from "../train/report.js";
import { type TrainOptions, train } from "../train/trainer.js";
import { LoraTsError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";
import { parseNumber } from "./parse.js";

const positiveInt = z.number().int().positive();
const TrainConfigSchema = z
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
    resume: z.boolean(),
    force: z.boolean(),
    schedule: z.enum(["constant", "linear", "cosine"]),
    warmup_steps: z.number().int().min(0),
    weight_decay: z.number().min(0),
    max_grad_norm: z.number().positive(),
    train_on_inputs: z.boolean(),
    packing: z.boolean(),
    threads: positiveInt,
    base_int8: z.boolean(),
  })
  .partial()
  .strict();

type TrainConfig = z.infer<typeof TrainConfigSchema>;

function readConfigFile(path: string): TrainConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new LoraTsError(`${path}: cannot read the config file`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new LoraTsError(
      `${path}: not valid ${path.endsWith(".json") ? "JSON" : "YAML"} (${(e as Error).message.split("\n")[0]})`,
    );
  }
  const parsed = TrainConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key =
      issue.path.join(".") || (issue.code === "unrecognized_keys" ? issue.keys.join(", ") : "(top level)");
    throw new LoraTsError(`${path}: ${key}: ${issue.message}`);
  }
  return parsed.data;
}

/** Flags (commander, camelCase) as config keys (snake_case), parsed to numbers where the schema says so. */
function flagsToConfig(flags: Record<string, unknown>): TrainConfig {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined || k === "config" || k === "progress" || k === "report") continue;
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

/** A regex metacharacter: a --target string holding one is a regex, as PEFT reads a string. */
const REGEX_CHARS = /[\\^$*+?()[\]{}|]/;

/**
 * --target (or "target:" as a string in a config file): "all-linear", a full-match regex over module
 * paths when it holds a regex metacharacter, else comma-separated module names (exact or ".suffix").
 */
export function targetFlag(t: string): string | string[] {
  if (t === "all-linear" || REGEX_CHARS.test(t)) return t;
  return t.split(",").map((name) => name.trim());
}

function toTrainOptions(c: TrainConfig): TrainOptions {
  for (const key of ["model", "data", "out"] as const) {
    if (!c[key]) throw new LoraTsError(`train: --${key} is required (or "${key}:" in the config file)`);
  }
  if (c.epochs !== undefined && c.max_steps !== undefined)
    throw new LoraTsError("train: give --epochs or --max-steps, not both");
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
    resume: c.resume,
    force: c.force,
    schedule: c.schedule,
    warmupSteps: c.warmup_steps,
    weightDecay: c.weight_decay,
    maxGradNorm: c.max_grad_norm,
    trainOnInputs: c.train_on_inputs,
    packing: c.packing,
    threads: c.threads,
    baseInt8: c.base_int8,
  };
}

/** One line per data file: what was kept, truncated and dropped, and why. */
const dataLine: TrainerEvents = {
  onData: (d, role) => process.stdout.write(`${role === "val" ? "val data" : "data"}: ${describeData(d)}\n`),
};

export function registerTrain(program: Command): void {
  program
    .command("train")
    .description("train a LoRA adapter (or, with --mode full, every weight) on a data set")
    .option("--model <dir>", "base model directory or .gguf file")
    .option(
      "--data <file>",
      "training data: .txt, .jsonl or .json (text, prompt/completion, alpaca, chat, sharegpt)",
    )
    .option("--val-data <file>", "validation data")
    .option("--val-fraction <x>", "hold out this fraction of --data for validation (default 0)")
    .option(
      "--out <dir>",
      "output directory: adapter (or model), checkpoints, metrics.jsonl, report (new or empty, unless --resume or --force)",
    )
    .option("--config <file>", "YAML or JSON file with these options (keys like batch_size)")
    .option("--mode <mode>", "lora (default) or full")
    .option("--r <r>", "LoRA rank (default 8)")
    .option("--alpha <alpha>", "LoRA alpha (default 16)")
    .option("--dropout <p>", "LoRA dropout (default 0.05)")
    .option(
      "--target <modules>",
      "all-linear, comma-separated module names, or a full-match regex over module paths (any value with one of ^$*+?()[]{}|\\) (default: PEFT's per model)",
    )
    .option("--rslora", "scale by alpha/sqrt(r)")
    .option("--bias <which>", "train biases too: none (default), all or lora_only")
    .option("--lora-config <file>", "an adapter_config.json to take every LoRA setting from")
    .option("--lr <lr>", "peak learning rate (default 2e-4)")
    .option("--epochs <n>", "passes over the data (default 1)")
    .option("--max-steps <n>", "stop after this many optimizer steps instead")
    .option("--batch-size <n>", "sequences per micro-batch (default 4)")
    .option("--grad-accum <k>", "micro-batches per optimizer step (default 1)")
    .option("--max-length <n>", "longest sequence in tokens (default 512, capped by the model)")
    .option("--seed <s>", "seed for init, shuffling and dropout (default 0)")
    .option("--eval-every <n>", "validation loss every n steps (and at the start and end)")
    .option("--save-every <n>", "checkpoint every n steps")
    .option("--resume", "continue from the newest checkpoint in --out")
    .option("--force", "replace a non-empty --out (swapped in only when the new run succeeds)")
    .option("--schedule <kind>", "constant, linear (default) or cosine")
    .option("--warmup-steps <n>", "linear warm-up steps (default 0)")
    .option("--weight-decay <x>", "AdamW decoupled weight decay (default 0)")
    .option("--max-grad-norm <x>", "clip gradients to this global norm (default 1)")
    .option("--train-on-inputs", "score prompt / user tokens too")
    .option("--packing", "pack several examples into each sequence")
    .option("--threads <n>", "onnxruntime threads (default: every core)")
    .option("--base-int8", "frozen linear weights in int8: faster, leaner, approximate (LoRA mode)")
    .option("--no-progress", "no progress bar")
    .option("--no-report", "no report.html / loss.png / terminal chart at the end")
    .action(async (flags: Record<string, unknown>) => {
      const fromFile = typeof flags["config"] === "string" ? readConfigFile(flags["config"]) : {};
      const opts = toTrainOptions({ ...fromFile, ...flagsToConfig(flags) });
      // metrics.jsonl is opened when the run starts, after the trainer has checked its inputs.
      const log = runMetricsLog(opts.out);
      const events: TrainerEvents[] = [log, dataLine];
      if (flags["progress"] !== false) events.push(progressReporter({}));
      if (flags["report"] !== false) events.push(reportEvents(opts.out));
      try {
        await train(opts, events);
      } finally {
        log.close();
      }
    });

  program
    .command("eval")
    .description("loss and perplexity over the tokens training would score")
    .requiredOption("--model <dir>", "model directory or .gguf file")
    .option("--adapter <dir>", "LoRA adapter directory")
    .requiredOption("--data <file>", "data set (same formats as train)")
    .option("--max-length <n>", "longest sequence in tokens (default 512, capped by the model)")
    .option("--batch-size <n>", "sequences per batch", "4")
    .option("--train-on-inputs", "score prompt / user tokens too")
    .option("--json", 'print {"loss","perplexity","tokens"}')
    .action(
      async (f: {
        model: string;
        adapter?: string;
        data: string;
        maxLength?: string;
        batchSize: string;
        trainOnInputs?: boolean;
        json?: boolean;
      }) => {
        const r = await evaluate({
          model: f.model,
          adapter: f.adapter,
          data: f.data,
          maxLength:
            f.maxLength === undefined
              ? undefined
              : parseNumber("--max-length", f.maxLength, { integer: true, min: 1 }),
          batchSize: parseNumber("--batch-size", f.batchSize, { integer: true, min: 1 }),
          trainOnInputs: f.trainOnInputs,
        });
        if (f.json) process.stdout.write(`${JSON.stringify(r)}\n`);
        else
          process.stdout.write(
            `loss ${r.loss.toFixed(4)}  perplexity ${r.perplexity.toFixed(3)}  tokens ${r.tokens}\n`,
          );
      },
    );
}
