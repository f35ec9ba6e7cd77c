/**
 * Sharded safetensors, as Hugging Face writes them: `model-00001-of-0000N.safetensors` files filled
 * in tensor order up to a byte limit, plus `model.safetensors.index.json` mapping every tensor to its
 * file. A model that fits the limit is one `model.safetensors` with no index, as save_pretrained does.
 */
import { join } from "node:path";
import { writeFileAtomic } from "../util/atomic.js";
import { LoraTsError } from "../util/errors.js";
import { type TensorToWrite, writeSafetensors } from "./safetensors.js";

/** Hugging Face's default `max_shard_size`. */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

// huggingface_hub's parse_size_to_int: "GB" is decimal, "GiB" binary.
const UNITS: Record<string, number> = {
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Parses "5GB", "500MB", "2GiB" or a plain byte count; `flag` names the option in the error. */
export function parseShardSize(text: string, flag = "--max-shard-size"): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(text);
  const unit = m?.[2]?.toUpperCase();
  const scale = unit === undefined || unit === "B" ? 1 : UNITS[unit];
  const bytes = m && scale !== undefined ? Math.floor(Number(m[1]) * scale) : Number.NaN;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new LoraTsError(
      `${flag} ${JSON.stringify(text)}: use a positive size such as 5GB, 500MB, 2GiB or a byte count`,
    );
  }
  return bytes;
}

/** Splits tensors into shards the way huggingface_hub's split_state_dict_into_shards does. */
export function planShards(tensors: readonly TensorToWrite[], maxBytes: number): TensorToWrite[][] {
  const shards: TensorToWrite[][] = [];
  let current: TensorToWrite[] = [];
  let size = 0;
  for (const t of tensors) {
    const n = t.data.byteLength;
    // A tensor over the limit cannot be split: it gets a shard of its own, appended at once while
    // the open shard keeps filling (huggingface_hub does the same, so shard contents match its).
    if (n > maxBytes) {
      shards.push([t]);
      continue;
    }
    if (current.length > 0 && size + n > maxBytes) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += n;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

/**
 * Writes `tensors` into `dir` as `model.safetensors`, or as shards plus an index when they exceed
 * `maxBytes`. Returns the file names written. `dir` should be a fresh folder (no stale shards).
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: readonly TensorToWrite[],
  maxBytes: number = DEFAULT_MAX_SHARD_BYTES,
  metadata: Record<string, string> = { format: "pt" },
): string[] {
  const shards = planShards(tensors, maxBytes);
  if (shards.length <= 1) {
    writeSafetensors(join(dir, "model.safetensors"), tensors, metadata);
    return ["model.safetensors"];
  }
  const pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  let totalSize = 0;
  shards.forEach((shard, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    writeSafetensors(join(dir, file), shard, metadata);
    for (const t of shard) {
      weightMap[t.name] = file;
      totalSize += t.data.byteLength;
    }
    files.push(file);
  });
  // transformers writes the index with json.dumps(indent=2, sort_keys=True) and a trailing newline.
  const sorted = Object.fromEntries(
    Object.keys(weightMap)
      .sort()
      .map((k) => [k, weightMap[k]]),
  );
  const index = { metadata: { total_size: totalSize }, weight_map: sorted };
  writeFileAtomic(join(dir, "model.safetensors.index.json"), `${JSON.stringify(index, null, 2)}\n`);
  return [...files, "model.safetensors.index.json"];
}
