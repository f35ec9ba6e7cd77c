/**
 * `--data org/name[@revision]`: a Hugging Face data set repository as local data files.
 *
 * The revision is resolved to a commit and the repository's files listed (hub-repo.ts, as for
 * models, with the same HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE), the split's files picked as
 * `datasets` picks them (hub-data-files.ts) and downloaded into the Hugging Face cache in
 * huggingface_hub's layout (`datasets--org--name/{blobs,snapshots,refs}`), so Python's datasets
 * and huggingface_hub reuse them and we reuse theirs.
 *
 * The file list of each commit is kept in lora-ts's cache (`$LORA_TS_CACHE/hub-trees/`, outside
 * the hub cache, which Python's tools scan) so that a data set used before is opened again without
 * a request, also for a branch like "main" (its refs/ file names the commit), as models are.
 * With HF_HUB_OFFLINE and no list (a snapshot Python downloaded), the split is picked from the
 * files in the snapshot folder.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { writeJsonAtomic } from "../util/atomic.js";
import { cacheRoot } from "../util/cache-root.js";
import { LoraTsError } from "../util/errors.js";
import { cachedCommit, fileExists, writeRef } from "./hub-cache.js";
import { DATA_EXTENSIONS, dataSplits } from "./hub-data-files.js";
import {
  fetchFiles,
  type HubFile,
  type HubRepo,
  hubError,
  hubOffline,
  hubRepo,
  listRepoFiles,
  parseHubId,
  progressLine,
  resolveCommit,
} from "./hub-repo.js";

export interface DataFilesOptions {
  /** The split to read; default "train". */
  split?: string;
  /** The flag that named `spec` (e.g. "--data"), for messages. */
  flag: string;
  /** The flag that named the split, for messages; default "--split". */
  splitFlag?: string;
  /** Draw the download progress line on stderr; default: when stderr is a terminal. */
  progress?: boolean;
}

/**
 * The local data files `spec` names: `[spec]` when it is a path that exists, else the files of the
 * split of the hub data set `org/name[@revision]`, in the cache, in the order `datasets` reads them.
 * Every failure is one LoraTsError line that starts with the flag.
 */
export async function resolveDataFiles(spec: string, opts: DataFilesOptions): Promise<string[]> {
  if (existsSync(spec)) return [spec];
  // `data/train.jsonl` is written like org/name too; a data file's extension says it is a path.
  const looksLikeFile = DATA_EXTENSIONS.some((e) => spec.split("@")[0]!.toLowerCase().endsWith(e));
  if (!parseHubId(spec) || looksLikeFile) {
    throw new LoraTsError(`${opts.flag} ${spec}: no such file (nor a hub data set id, org/name[@revision])`);
  }
  const r = hubRepo(spec, "dataset");
  const where = { r, spec, opts, split: opts.split ?? "train" };
  try {
    const cached = await fromCache(where);
    if (cached) return cached;
    if (hubOffline()) {
      throw new LoraTsError(
        `${r.what}: not in the hub cache ${r.cache} and HF_HUB_OFFLINE is set: run once without HF_HUB_OFFLINE to download it`,
      );
    }
    return await download(where);
  } catch (e) {
    const err = hubError(e, r);
    throw new LoraTsError(err.message.startsWith(opts.flag) ? err.message : `${opts.flag} ${err.message}`);
  }
}

interface Where {
  r: HubRepo;
  spec: string;
  opts: DataFilesOptions;
  split: string;
}

/**
 * The split's files from the cache: null when the commit's file list is not there. A split of a
 * listed commit whose files are not all there yet is fetched without asking for the list again.
 */
async function fromCache(w: Where): Promise<string[] | null> {
  const commit = cachedCommit(w.r.storage, w.r.revision);
  if (!commit) return null;
  const snapshot = join(w.r.storage, "snapshots", commit);
  const tree = readTree(w.r, commit);
  if (!tree) {
    if (!hubOffline() || !existsSync(snapshot)) return null;
    // Offline with a snapshot another tool made: what is there is all there is.
    return pick(w, walk(snapshot), readText(join(snapshot, README))).map((p) => join(snapshot, p));
  }
  const picked = pick(
    w,
    tree.map((f) => f.path),
    await readme(w, commit, tree),
  );
  const paths = picked.map((p) => join(snapshot, p));
  if (paths.every(fileExists)) return paths;
  if (hubOffline()) {
    throw new LoraTsError(
      `${w.r.what}: the ${w.split} split is not all in the hub cache ${w.r.cache} and HF_HUB_OFFLINE is set: run once without HF_HUB_OFFLINE to download it`,
    );
  }
  const wanted = new Set(picked);
  await fetchFiles(
    w.r,
    commit,
    tree.filter((f) => wanted.has(f.path)),
    progressLine(w.opts.progress),
  );
  return paths;
}

async function download(w: Where): Promise<string[]> {
  const commit = await resolveCommit(w.r);
  const tree = await listRepoFiles(w.r, commit);
  writeTree(w.r, commit, tree);
  const picked = pick(
    w,
    tree.map((f) => f.path),
    await readme(w, commit, tree),
  );
  const wanted = new Set(picked);
  const snapshot = await fetchFiles(
    w.r,
    commit,
    tree.filter((f) => wanted.has(f.path)),
    progressLine(w.opts.progress),
  );
  writeRef(w.r.storage, w.r.revision, commit);
  return picked.map((p) => join(snapshot, p));
}

const README = "README.md";

/**
 * The text of the commit's README.md (its YAML header may list the splits' files), fetched when the
 * tree has one; undefined when there is none, or offline and not in the cache.
 */
async function readme(w: Where, commit: string, tree: HubFile[]): Promise<string | undefined> {
  const entry = tree.find((f) => f.path === README);
  if (!entry) return undefined;
  const path = join(w.r.storage, "snapshots", commit, README);
  if (!fileExists(path) && !hubOffline()) await fetchFiles(w.r, commit, [entry], null);
  return readText(path);
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** The split's files among the repository's paths, or the one-line reason there are none. */
function pick(w: Where, paths: string[], readmeText: string | undefined): string[] {
  const splits = dataSplits(paths, readmeText);
  const files = splits.get(w.split);
  const what = `${w.opts.flag} ${w.spec}`;
  if (files?.length) return files;
  if (files) {
    throw new LoraTsError(
      `${what}: the data set's README.md gives split "${w.split}" data_files that match no file lora-ts reads (${DATA_EXTENSIONS.join(", ")})`,
    );
  }
  if (splits.size > 0) {
    throw new LoraTsError(
      `${what}: the data set has no split "${w.split}" (${w.opts.splitFlag ?? "--split"}); its splits: ${[...splits.keys()].join(", ")}`,
    );
  }
  const scripts = paths.filter((p) => p.endsWith(".py") && !p.includes("/"));
  if (scripts.length > 0) {
    throw new LoraTsError(
      `${what}: the data set is built by a loading script (${scripts.join(", ")}), which lora-ts does not run: try ${w.r.repo}@refs/convert/parquet, the hub's parquet conversion of it`,
    );
  }
  const others = [...new Set(paths.map((p) => /\.[^./]+$/.exec(p)?.[0]).filter((e) => e))];
  throw new LoraTsError(
    `${what}: no data files lora-ts reads (${DATA_EXTENSIONS.join(", ")}) in the repository${others.length ? ` (it has ${others.join(", ")})` : ""}`,
  );
}

/** Every file under `dir`, relative, with "/" separators (symlinks to blobs count as files). */
function walk(dir: string): string[] {
  const out: string[] = [];
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) visit(p);
      else if (fileExists(p)) out.push(relative(dir, p).split("\\").join("/"));
    }
  };
  visit(dir);
  return out;
}

function treeFile(r: HubRepo, commit: string): string {
  return join(cacheRoot(), "hub-trees", relative(r.cache, r.storage), `${commit}.json`);
}

function readTree(r: HubRepo, commit: string): HubFile[] | null {
  try {
    const v = JSON.parse(readFileSync(treeFile(r, commit), "utf8")) as unknown;
    return Array.isArray(v) && v.every((f) => typeof f?.path === "string") ? (v as HubFile[]) : null;
  } catch {
    return null; // none yet, or torn: ask the hub again
  }
}

function writeTree(r: HubRepo, commit: string, tree: HubFile[]): void {
  const file = treeFile(r, commit);
  mkdirSync(dirname(file), { recursive: true });
  writeJsonAtomic(
    file,
    tree.map((f) => ({ path: f.path, size: f.size, oid: f.oid, ...(f.lfs && { lfs: f.lfs }) })),
  );
}
