/** `lora-ts merge` and `lora-ts combine`: adapters in, a model or a new adapter out. */
import type { Command } from "commander";
import { parseShardSize } from "../io/safetensors-shards.js";
import { loadAdapter, writeAdapterFiles } from "../lora/adapter-files.js";
import { resolveAdapterPath } from "../lora/adapter-path.js";
import { combineAdapters } from "../lora/merge.js";
import { type MergeDtype, mergeModel } from "../lora/merge-model.js";
import { writeDirAtomic } from "../util/atomic.js";
import { preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";
import { refuseBadOut, refuseNonEmpty } from "../util/out-dir.js";
import { collect, parseAdapterSpecs, parseNumber } from "./parse.js";

interface MergeFlags {
  model: string;
  adapter: string;
  out: string;
  dtype: string;
  maxShardSize: string;
  force?: boolean;
}

export function registerAdapterCommands(program: Command): void {
  program
    .command("merge")
    .description(
      "merge an adapter into the base weights (W' = W + s·B·A) and write a complete model directory",
    )
    .requiredOption(
      "--model <dir>",
      "base model directory, .gguf file or hub id org/name[@revision] (only read)",
    )
    .requiredOption(
      "--adapter <dir>",
      "PEFT adapter directory, GGUF LoRA adapter (.gguf) or hub id org/name[@revision]",
    )
    .requiredOption("--out <dir>", "output model directory (must not exist, unless --force)")
    .option("--dtype <dtype>", "weights dtype: same, f32, bf16 or f16", "same")
    .option(
      "--max-shard-size <size>",
      "largest weights file, e.g. 5GB, 500MB, 2GiB or bytes; above it model-0000i-of-0000N.safetensors + index",
      "5GB",
    )
    .option("--force", "replace an existing output directory")
    .action(async (f: MergeFlags) => {
      const maxShardBytes = parseShardSize(f.maxShardSize);
      if (!["same", "f32", "bf16", "f16"].includes(f.dtype)) {
        throw new LoraTsError(`--dtype ${preview(f.dtype)}: use same, f32, bf16 or f16`);
      }
      const { merged } = await mergeModel({ ...f, dtype: f.dtype as MergeDtype, maxShardBytes });
      process.stdout.write(`merged ${merged.length} weights; wrote ${f.out}\n`);
    });

  program
    .command("combine")
    .description("combine adapters into a new one: linear (equal ranks) or cat (ranks concatenated)")
    .requiredOption(
      "--adapter <dir>",
      "adapter directory or hub id, or name=DIR (repeatable, at least one)",
      collect,
    )
    .requiredOption("--weights <w>", "one weight per adapter, e.g. 0.7,0.3")
    .option("--type <type>", "linear or cat", "linear")
    .requiredOption("--out <dir>", "output adapter directory (must not exist, unless --force)")
    .option("--force", "replace an existing output directory")
    .action(async (f: { adapter: string[]; weights: string; type: string; out: string; force?: boolean }) => {
      const specs = parseAdapterSpecs(
        f.adapter.map((a, i) => (a.includes("=") ? a : `adapter${i + 1}=${a}`)),
      );
      const weights = f.weights.split(",").map((w) => parseNumber("--weights", w));
      if (f.type !== "linear" && f.type !== "cat")
        throw new LoraTsError(`--type ${preview(f.type)}: use linear or cat`);
      // The input adapters are only read: with --force, replacing a folder holding one would delete it.
      refuseBadOut(
        f.out,
        specs.map((s) => ({ path: s.dir, what: "the input adapter", insideOk: true })),
      );
      refuseNonEmpty(f.out, f.force);
      // Hub ids become snapshot folders (one at a time: downloads share the connection and the disk).
      const dirs: string[] = [];
      for (const s of specs) dirs.push(await resolveAdapterPath(s.dir));
      const fromHub = dirs.filter((d, i) => d !== specs[i]!.dir);
      refuseBadOut(
        f.out,
        fromHub.map((path) => ({ path, what: "the input adapter", insideOk: true })),
      );
      const combined = combineAdapters(
        dirs.map((d) => loadAdapter(d)),
        weights,
        f.type,
      );
      // Assembled beside --out and renamed into place; with --force the old folder goes as a whole.
      await writeDirAtomic(f.out, (tmp) => writeAdapterFiles(tmp, combined), { replace: f.force });
      process.stdout.write(`wrote ${f.out}\n`);
    });
}
