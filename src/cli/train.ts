/**
 * `lora-ts train` and `lora-ts eval`. Flags and config files (YAML or JSON, keys = the long flag
 * names with "_" for "-", e.g. batch_size) mean the same; a flag given on the command line wins.
 * Config files are checked by a zod schema, and any problem is one line naming the file and the key.
 */
import type { Command } from "commander";
import { describeData } from "../data/examples.js";
import { evaluate } from "../train/evaluate.js";
import type { TrainerEvents } from "../train/events.js";
import { exitCodeFor, interruptLine, TrainingInterrupted, watchStopSignals } from "../train/interrupt.js";
import { describeMemory } from "../train/memory-estimate.js";
import { runMetricsLog } from "../train/metrics-log.js";
import { dataPreparationLines, progressReporter } from "../train/progress.js";
import { reportEvents } from "../train/report.js";
import { train } from "../train/trainer.js";
import { parseNumber } from "./parse.js";
import { flagsToConfig, readConfigFile, toTrainOptions } from "./train-config.js";

/** A command line as a shell reads it back: words with shell-special characters single-quoted. */
function shellLine(words: string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", "'\\''")}'`)).join(" ");
}

/** The train command as it was run, with `flag` (--resume or --force) in place of either. */
function rerunWith(argv: readonly string[], flag: "--resume" | "--force"): string {
  return shellLine(["lora-ts", ...argv.filter((a) => a !== "--resume" && a !== "--force"), flag]);
}

/**
 * One line per data file (what was kept, truncated and dropped, and why) and one for the estimated
 * peak memory, before the run starts.
 */
const dataLine: TrainerEvents = {
  onData: (d, role, preparation) =>
    process.stdout.write(
      `${role === "val" ? "val data" : "data"}: ${describeData(d)}${preparation?.cached ? " (prepared before: from the data cache)" : ""}\n`,
    ),
  onMemory: (estimate, available) => process.stdout.write(`memory: ${describeMemory(estimate, available)}\n`),
};

export function registerTrain(program: Command): void {
  program
    .command("train")
    .description("train a LoRA adapter (or, with --mode full, every weight) on a data set")
    .option("--model <dir>", "base model directory, .gguf file or hub id org/name[@revision]")
    .option(
      "--data <file>",
      "training data: .txt, .jsonl, .json or .parquet (text, prompt/completion, alpaca, chat, sharegpt), or a hub data set org/name[@revision]",
    )
    .option("--split <name>", "the split of a hub data set given as --data (default train)")
    .option("--val-data <file>", "validation data (a file or a hub data set)")
    .option(
      "--val-split <name>",
      "validation rows: this split of --val-data, or without it of --data (e.g. validation)",
    )
    .option(
      "--columns <map>",
      "the data's column names for a row format's fields, e.g. prompt=question,completion=answer",
    )
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
    .option("--dora", "DoRA (PEFT's use_dora): train a magnitude per output beside A and B")
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
    .option("--save-total-limit <n>", "keep only the newest n checkpoints (older ones are deleted)")
    .option("--resume", "continue from the newest checkpoint in --out (with the same settings)")
    .option("--force", "replace a non-empty --out (swapped in only when the new run succeeds)")
    .option("--schedule <kind>", "constant, linear (default) or cosine")
    .option("--warmup-steps <n>", "linear warm-up steps (default 0)")
    .option("--weight-decay <x>", "AdamW decoupled weight decay (default 0)")
    .option("--max-grad-norm <x>", "clip gradients to this global norm (default 1)")
    .option("--train-on-inputs", "score prompt / user tokens too")
    .option("--packing", "pack several examples into each sequence")
    .option(
      "--data-workers <n>",
      "threads that tokenize the data (default: one per core; 1: the main thread); the result is the same",
    )
    .option("--threads <n>", "onnxruntime threads (default: every core)")
    .option("--base-int8", "frozen linear weights in int8: faster, leaner, approximate (LoRA mode)")
    .option(
      "--gradient-checkpointing",
      "recompute each layer's activations in the backward pass: much less memory, about 40% more time per step",
    )
    .option("--no-memory-check", "start even when the estimated peak memory is above the available memory")
    .option(
      "--no-data-cache",
      "prepare the data in a temporary folder removed after the run, not in the data cache",
    )
    .option("--no-progress", "no progress bar")
    .option("--no-report", "no report.html / loss.png / terminal chart at the end")
    .action(async (flags: Record<string, unknown>) => {
      const fromFile = typeof flags["config"] === "string" ? readConfigFile(flags["config"]) : {};
      const opts = toTrainOptions({ ...fromFile, ...flagsToConfig(flags) });
      // metrics.jsonl is opened when the run starts, after the trainer has checked its inputs.
      const log = runMetricsLog(opts.out);
      const events: TrainerEvents[] = [log, dataLine];
      // Without the progress bar, data preparation still says when it starts and ends.
      events.push(flags["progress"] !== false ? progressReporter({}) : dataPreparationLines());
      if (flags["report"] !== false) events.push(reportEvents(opts.out));
      // Ctrl-C / SIGTERM: the run stops between steps, says where and how to go on, exits 130 / 143.
      // Before it starts (onStart comes before anything is written to --out) it just exits.
      let started = false;
      events.unshift({ onStart: () => (started = true) });
      const stop = watchStopSignals(() =>
        started ? null : `interrupted before training started; ${opts.out} is as it was`,
      );
      try {
        await train({ ...opts, signal: stop.signal }, events);
      } catch (e) {
        if (!(e instanceof TrainingInterrupted)) throw e;
        log.close();
        const argv = process.argv.slice(2); // the binary's own command line
        process.stderr.write(`${interruptLine(e.info, (flag) => rerunWith(argv, flag))}\n`);
        process.exit(exitCodeFor(e.info.signal));
      } finally {
        stop.dispose();
        log.close();
      }
    });

  program
    .command("eval")
    .description("loss and perplexity over the tokens training would score")
    .requiredOption("--model <dir>", "model directory, .gguf file or hub id org/name[@revision]")
    .option("--adapter <dir>", "LoRA adapter directory, hub id org/name[@revision] or GGUF adapter")
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
