/**
 * The prepared-data cache, as Hugging Face `datasets` keeps one: a data set tokenized once is kept in
 * `<cache root>/data/<fingerprint>/` (cache root: $LORA_TS_CACHE, else $XDG_CACHE_HOME/lora-ts, else
 * ~/.cache/lora-ts) and a later run with the same inputs reads it instead of preparing again.
 *
 * The fingerprint is a sha256 over the CONTENT of every data file (not its name or mtime: a file
 * rewritten with other rows gets another key, a copied file the same one) and over every setting that
 * changes what preparation makes (the caller's `parts`: tokenizer, chat template, format options,
 * max length, packing, train-on-inputs, ...), plus DATA_CACHE_VERSION. A changed input therefore
 * never reuses a stale folder; it gets a new one beside it.
 *
 * A folder is built under a temporary name and renamed into place (util/atomic.ts writeDirAtomic), so
 * a killed run never leaves a half-written folder under a fingerprint. A folder that cannot be opened
 * (truncated or missing files) is rebuilt, with a warning. Nothing is ever evicted: the folders are
 * plain files the user may delete at any time.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeDirAtomic } from "../util/atomic.js";
import { cacheRoot } from "../util/cache-root.js";
import { FileFormatError } from "../util/errors.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * Bump when what preparation writes, or how it tokenizes, changes: every older folder is then left
 * unused (a different key) rather than read as if it were current.
 */
export const DATA_CACHE_VERSION = 1;

/** `<cache root>/data`, read from the environment on every call. */
export function dataCacheDir(): string {
  return join(cacheRoot(), "data");
}

/** JSON with object keys sorted at every level, so equal settings always hash alike. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

const HASH_CHUNK = 1 << 22;

/** sha256 of a file's bytes, read in 4 MiB pieces (a data file may exceed what one string holds). */
export function fileContentHash(path: string): string {
  const h = createHash("sha256");
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new FileFormatError(path, `cannot read (${(e as Error).message})`);
  }
  try {
    const buf = Buffer.allocUnsafe(HASH_CHUNK);
    for (;;) {
      const n = readSync(fd, buf, 0, HASH_CHUNK, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

/**
 * The key of a prepared data set: sha256 over DATA_CACHE_VERSION, `parts` (canonical JSON) and the
 * content hash of each file, in order (the same rows split over other files is another data set).
 */
export function dataFingerprint(parts: Record<string, unknown>, files: readonly string[]): string {
  const h = createHash("sha256");
  h.update(canonicalJson({ version: DATA_CACHE_VERSION, parts }));
  for (const f of files) h.update(`\0${fileContentHash(f)}`);
  return h.digest("hex");
}

/**
 * What a tokenizer contributes to the key: its tokenizer.json (as a hash: it can be megabytes) and
 * its tokenizer_config.json whole, which holds the chat template, the BOS/EOS tokens and
 * add_bos_token. A model whose tokenizer differs in any of them gets its own folder.
 */
export function tokenizerKeyParts(tok: Tokenizer): Record<string, unknown> {
  return {
    tokenizerJson: createHash("sha256").update(JSON.stringify(tok.tokenizerJson)).digest("hex"),
    tokenizerConfig: tok.tokenizerConfig,
  };
}

export interface CachedData {
  /** The prepared folder to read. */
  dir: string;
  /** True when the folder was already in the cache. */
  hit: boolean;
  /** Removes the folder when it was a temporary one (no cache); a cached folder stays. */
  dispose(): void;
}

export interface DataCacheOptions {
  /** The key (see dataFingerprint), or null for no cache (`--no-data-cache`). */
  fingerprint: string | null;
  /** Writes the prepared data set into `dir`, an empty folder. */
  build: (dir: string) => Promise<void>;
  /** Opens a prepared folder; throws when it is incomplete or damaged. */
  open: (dir: string) => void;
  /** One line for the user (a damaged cache folder being rebuilt). */
  warn: (line: string) => void;
}

/**
 * The prepared folder for `fingerprint`: the cached one when it opens, else a new one built by `build`
 * and renamed into the cache. With no fingerprint, the folder is a temporary one that dispose() removes.
 */
export async function withDataCache(o: DataCacheOptions): Promise<CachedData> {
  if (o.fingerprint === null) {
    const dir = mkdtempSync(join(tmpdir(), "lora-ts-data-"));
    const dispose = () => rmSync(dir, { recursive: true, force: true });
    try {
      await o.build(dir);
      o.open(dir);
    } catch (e) {
      dispose();
      throw e;
    }
    return { dir, hit: false, dispose };
  }
  const dir = join(dataCacheDir(), o.fingerprint);
  let replace = false;
  if (existsSync(dir)) {
    try {
      o.open(dir);
      return { dir, hit: true, dispose: () => {} };
    } catch (e) {
      o.warn(`data cache ${dir}: unreadable (${(e as Error).message}); preparing the data again`);
      replace = true;
    }
  }
  mkdirSync(dataCacheDir(), { recursive: true });
  try {
    await writeDirAtomic(dir, (tmp) => o.build(tmp), { replace });
  } catch (e) {
    // Another run that prepared the same data set may have renamed its folder into place first.
    if (replace || !existsSync(dir)) throw e;
  }
  o.open(dir);
  return { dir, hit: false, dispose: () => {} };
}
