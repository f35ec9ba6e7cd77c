/**
 * `lora-ts download org/name[@revision]`: fetches a model (or, with --adapter, an adapter) into the
 * Hugging Face cache ahead of time and prints its snapshot folder on stdout, so that it can be used
 * by path or by id later, also offline (HF_HUB_OFFLINE=1). Unlike a --model id, which is used from
 * the cache without asking the hub once complete, this always asks: it is how a cached branch such
 * as "main" is brought up to date.
 */
import type { Command } from "commander";
import { hubSnapshot, parseHubId } from "../io/hub.js";
import { LoraTsError } from "../util/errors.js";
import { collect } from "./parse.js";

interface DownloadFlags {
  revision?: string;
  include?: string[];
  adapter?: boolean;
  progress?: boolean;
}

export function registerDownload(program: Command): void {
  program
    .command("download")
    .description(
      "prefetch a model (or adapter) from the Hugging Face hub into its cache; prints the snapshot folder",
    )
    .argument("<id>", "hub id, org/name or org/name@revision")
    .option("--revision <rev>", "branch, tag or commit (instead of @revision)")
    .option(
      "--include <glob>",
      "only files matching the glob (repeatable; * stays within a folder, ** crosses folders; never .bin pickles)",
      collect,
    )
    .option("--adapter", "a PEFT adapter: adapter_config.json and adapter_model.safetensors")
    .option("--progress", "draw the progress line on stderr even when it is not a terminal")
    .option("--no-progress", "no progress line, even on a terminal")
    .action(async (id: string, f: DownloadFlags) => {
      if (!parseHubId(id))
        throw new LoraTsError(`${id}: not a hub id (expected org/name or org/name@revision)`);
      const dir = await hubSnapshot(id, {
        kind: f.adapter ? "adapter" : "model",
        revision: f.revision,
        include: f.include,
        progress: f.progress,
        refresh: true,
      });
      process.stdout.write(`${dir}\n`);
    });
}
