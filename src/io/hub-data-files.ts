/**
 * Which files of a data set repository make up a split, chosen the way Hugging Face `datasets`
 * chooses them for a repository without a loading script (datasets/data_files.py, fsspec ≥ 2023.12):
 *
 *  1. Sharded split files `data/<split>-00000-of-00003.<ext>` (what `push_to_hub` writes): every
 *     name before the shard numbers is a split; train, validation and test first, the rest sorted.
 *  2. Else a folder named after a split, or after a split word set off by `-._ ` or digits
 *     (`train/`, `data/train/`, `<config>/train/`, `train_set/`, `my-train/`), at any depth.
 *  3. Else a file named so (`train.jsonl`, `data/train-0.parquet`, `alpaca-train.json`).
 *     In 2 and 3 the split words are: train, training → train; validation, valid, dev, val →
 *     validation; test, testing, eval, evaluation → test. The first of 2 and 3 to find any file wins.
 *  4. Else every data file is the train split.
 *
 * Like `datasets`, hidden files and folders (`.name`) and folders named `__name` are skipped, and of
 * the data files only the most common kind is used (parquet; JSON, which is .json and .jsonl; or
 * text). Unlike it, only kinds lora-ts reads are candidates (.parquet, .jsonl, .json, .txt; not
 * .csv or compressed files).
 *
 * A README.md whose YAML header has a `configs:` list overrides all of this, as in `datasets`: the
 * config marked `default: true` (else the one named "default", else the first) gives each split's
 * `data_files` globs (relative to its `data_dir`), or, without data_files, the rules above apply
 * inside its data_dir.
 * A split's files come in the order `datasets` loads them: pattern by pattern, each sorted by path.
 */

import YAML from "yaml";

export const DATA_EXTENSIONS = [".parquet", ".jsonl", ".json", ".txt"] as const;

/** The kinds of data file, as `datasets` groups extensions into builders. */
const KIND: Record<string, string> = {
  ".parquet": "parquet",
  ".jsonl": "json",
  ".json": "json",
  ".txt": "text",
};
const KIND_ORDER = ["parquet", "json", "text"];

const IGNORED_NAMES = new Set([
  "README.md",
  "config.json",
  "dataset_info.json",
  "dataset_infos.json",
  "dummy_data.zip",
  "dataset_dict.json",
]);

const SPLIT_WORDS: readonly [string, readonly string[]][] = [
  ["train", ["train", "training"]],
  ["validation", ["validation", "valid", "dev", "val"]],
  ["test", ["test", "testing", "eval", "evaluation"]],
];

/** `datasets`' NON_WORDS_CHARS as a regex class: what may stand next to a split word. */
const SEP = "[-._ 0-9]";
const ANY_DIRS = "(?:.*/)?";

function dirPatterns(word: string): RegExp[] {
  return [
    `${ANY_DIRS}${word}/.+`,
    `${ANY_DIRS}${word}${SEP}[^/]*/.+`,
    `${ANY_DIRS}[^/]*${SEP}${word}/.+`,
    `${ANY_DIRS}[^/]*${SEP}${word}${SEP}[^/]*/.+`,
  ].map((re) => new RegExp(`^${re}$`));
}

function filePatterns(word: string): RegExp[] {
  return [`${ANY_DIRS}${word}${SEP}[^/]*`, `${ANY_DIRS}[^/]*${SEP}${word}${SEP}[^/]*`].map(
    (re) => new RegExp(`^${re}$`),
  );
}

const SHARDED = /^data\/([^/]+?)-[0-9]{5}-of-[0-9]{5}[^/]*\.[^/]*$/;
/** `datasets`' rule for split names. */
const SPLIT_NAME = /^\w+(\.\w+)*$/;

function extensionOf(path: string): string {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

/** Whether `path` is a data file `datasets` would look at and lora-ts can read. */
export function isDataFile(path: string): boolean {
  const parts = path.split("/");
  const name = parts.at(-1)!;
  if (parts.some((p) => p.startsWith(".") && p !== "." && p !== "..")) return false;
  if (parts.slice(0, -1).some((p) => p.startsWith("__"))) return false;
  if (IGNORED_NAMES.has(name)) return false;
  return Object.hasOwn(KIND, extensionOf(path));
}

/** Python's sort of str: by code point (not UTF-16 unit, which differs only beyond the BMP). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Files matched pattern by pattern, each pattern's sorted, none twice. */
function collect(paths: readonly string[], patterns: readonly RegExp[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const re of patterns) {
    for (const p of paths.filter((p) => re.test(p)).sort(byCodePoint)) {
      if (!seen.has(p)) out.push(p);
      seen.add(p);
    }
  }
  return out;
}

/**
 * Every split of the repository and its files, in `datasets`' order (see the file comment).
 * `readme` is the text of the repository's README.md, when it has one.
 */
export function dataSplits(repoPaths: readonly string[], readme?: string): Map<string, string[]> {
  const config = readme === undefined ? undefined : defaultConfig(readme);
  if (config === undefined) return conventionSplits(repoPaths);
  const dir = config.data_dir ? `${String(config.data_dir).replace(/^\.?\/+|\/+$/g, "")}/` : "";
  const files = config.data_files;
  if (files === undefined || files === null) {
    const inside = repoPaths.filter((p) => p.startsWith(dir)).map((p) => p.slice(dir.length));
    const splits = conventionSplits(inside);
    for (const [k, v] of splits)
      splits.set(
        k,
        v.map((p) => dir + p),
      );
    return splits;
  }
  const data = repoPaths.filter(isDataFile);
  const splits = new Map<string, string[]>();
  for (const [split, globs] of configPatterns(files)) {
    splits.set(
      split,
      collect(
        data,
        globs.map((g) => fsGlob(dir + g)),
      ),
    );
  }
  return splits;
}

interface ConfigEntry {
  config_name?: unknown;
  default?: unknown;
  data_dir?: unknown;
  data_files?: unknown;
}

/** The YAML header's chosen config (see the file comment), or undefined when there is none. */
function defaultConfig(readme: string): ConfigEntry | undefined {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\s*(?:\r?\n|$)/.exec(readme);
  if (!m) return undefined;
  let header: unknown;
  try {
    header = YAML.parse(m[1]!);
  } catch {
    return undefined; // a README's header that does not parse: datasets would fail; we fall back
  }
  const configs = (header as { configs?: unknown } | null)?.configs;
  if (!Array.isArray(configs) || configs.length === 0) return undefined;
  const list = configs.filter((c): c is ConfigEntry => typeof c === "object" && c !== null);
  return list.find((c) => c.default === true) ?? list.find((c) => c.config_name === "default") ?? list[0];
}

/** data_files in any of its YAML forms → split → globs (datasets' sanitize_patterns). */
function configPatterns(files: unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const globs = (v: unknown) =>
    (Array.isArray(v) ? v : [v]).filter((g): g is string => typeof g === "string");
  if (typeof files === "string") out.set("train", [files]);
  else if (Array.isArray(files)) {
    if (files.some((f) => typeof f === "object" && f !== null)) {
      for (const f of files as { split?: unknown; path?: unknown }[]) {
        if (typeof f?.split === "string") out.set(f.split, globs(f.path));
      }
    } else out.set("train", globs(files));
  } else if (typeof files === "object" && files !== null) {
    for (const [split, v] of Object.entries(files)) out.set(split, globs(v));
  }
  return out;
}

/**
 * An fsspec glob as a whole-path regex: `*` and `?` stay within a folder, `**` crosses folders, and
 * a `**` folder may also be no folder at all; `[...]` is a character class (`[!...]` negated).
 */
function fsGlob(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (glob.startsWith("**/", i)) {
      re += "(?:.*/)?";
      i += 2;
    } else if (glob.startsWith("**", i)) {
      re += ".*";
      i += 1;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        re += `[${glob
          .slice(i + 1, end)
          .replace(/^!/, "^")
          .replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[\\^$.|+()[\]{}]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** The naming conventions (points 1 to 4 of the file comment). */
function conventionSplits(repoPaths: readonly string[]): Map<string, string[]> {
  const data = repoPaths.filter(isDataFile);
  // Only the most common kind of data file, as datasets infers one builder for the repository.
  const counts = new Map<string, number>();
  for (const p of data) counts.set(KIND[extensionOf(p)]!, (counts.get(KIND[extensionOf(p)]!) ?? 0) + 1);
  const kind = KIND_ORDER.reduce((best, k) => ((counts.get(k) ?? 0) > (counts.get(best) ?? 0) ? k : best));
  const paths = data.filter((p) => KIND[extensionOf(p)] === kind);
  const splits = new Map<string, string[]>();
  if (paths.length === 0) return splits;

  const sharded = new Set<string>();
  for (const p of paths) {
    const m = SHARDED.exec(p);
    if (m && SPLIT_NAME.test(m[1]!)) sharded.add(m[1]!);
  }
  if (sharded.size > 0) {
    const main = SPLIT_WORDS.map(([s]) => s).filter((s) => sharded.has(s));
    const rest = [...sharded].filter((s) => !main.includes(s)).sort(byCodePoint);
    for (const s of [...main, ...rest]) {
      splits.set(s, paths.filter((p) => SHARDED.exec(p)?.[1] === s).sort(byCodePoint));
    }
    return splits;
  }
  for (const patterns of [dirPatterns, filePatterns]) {
    for (const [split, words] of SPLIT_WORDS) {
      const files = collect(paths, words.flatMap(patterns));
      if (files.length > 0) splits.set(split, files);
    }
    if (splits.size > 0) return splits;
  }
  splits.set("train", [...paths].sort(byCodePoint));
  return splits;
}
