/**
 * Checks on an output folder before anything is computed or written: an existing non-empty folder
 * needs `force`, and an output never overlaps a read-only input (a base model's folder, a file being
 * converted). Paths are compared by real path, through symlinks, also for an output that does not
 * exist yet (its nearest existing parent is resolved).
 */
import { accessSync, constants, existsSync, readdirSync, realpathSync, statSync } from "node:fs";
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { LoraTsError } from "./errors.js";

/** The real path of `p`; for a path that does not exist yet, its nearest existing parent's real path + the rest. */
export function realPathLoose(p: string): string {
  const abs = resolve(p);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    if (parent === abs) return abs;
    return join(realPathLoose(parent), basename(abs));
  }
}

/** How `a` stands to `b` by real path: the same path, inside it, containing it, or apart. */
export function pathRelation(a: string, b: string): "same" | "inside" | "contains" | null {
  const ra = realPathLoose(a);
  const rb = realPathLoose(b);
  if (ra === rb) return "same";
  const under = (x: string, y: string) => {
    const rel = relative(y, x);
    return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
  };
  if (under(ra, rb)) return "inside";
  if (under(rb, ra)) return "contains";
  return null;
}

/** A path that must only be read, and what it is, for the message (e.g. "the base model's folder"). */
export interface ReadOnlyPath {
  path: string;
  what: string;
  /**
   * A new folder inside it is fine: writing there adds files and changes none of its own (the demo
   * merges into OUT/merged beside its adapter). Never for a base model, whose folder is not written.
   */
  insideOk?: boolean;
}

/**
 * Throws a one-line error when `out` is, is inside, or contains any `readOnly` path, whatever the
 * flags: writing there would overwrite, or (with --force) delete, files that are only to be read.
 * `flag` names the output in the message (default "--out").
 */
export function refuseOverlap(out: string, readOnly: readonly ReadOnlyPath[], flag = "--out"): void {
  for (const r of readOnly) {
    const rel = pathRelation(out, r.path);
    if (!rel || (rel === "inside" && r.insideOk)) continue;
    const how = rel === "same" ? "is" : rel === "inside" ? "is inside" : "contains";
    throw new LoraTsError(`${flag} ${out}: ${how} ${r.what} ${r.path}, which is only ever read`);
  }
}

/** The base model's files are never written: `out` must not be, be inside, or contain the base model's folder. */
export function refuseBaseModelOut(out: string, modelPaths: readonly string[], flag = "--out"): void {
  refuseOverlap(
    out,
    modelPaths
      .filter((p) => existsSync(p))
      .map((p) => ({
        path: p,
        what: existsSync(p) && statSync(p).isFile() ? "the base model file" : "the base model's folder",
      })),
    flag,
  );
}

/** An existing non-empty `dir` is refused unless `force` (the same message as writeDirAtomic's). */
export function refuseNonEmpty(dir: string, force: boolean | undefined): void {
  if (force) return;
  let entries: string[];
  try {
    if (!existsSync(dir)) return;
    if (!statSync(dir).isDirectory()) throw new LoraTsError(`${dir}: exists and is not a directory`);
    entries = readdirSync(dir);
  } catch (e) {
    if (e instanceof LoraTsError) throw e;
    throw new LoraTsError(`${dir}: cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  if (entries.length > 0) throw new LoraTsError(`${dir}: already exists and is not empty`);
}

/** Why a folder cannot be written, in words, from the error code of a write probe. */
const WRITE_ERRORS: Record<string, string> = {
  EROFS: "is on a read-only file system",
  EACCES: "is not writable (permission denied)",
  EPERM: "is not writable (operation not permitted)",
};

/**
 * Checks, before any work, that `out` can be created and written: its nearest existing ancestor must be
 * a writable folder. Without this a read-only destination surfaced as the mkdir's misleading ENOENT,
 * and only after the model and data were loaded.
 */
export function refuseUnwritable(out: string, flag = "--out"): void {
  let at = resolve(out);
  while (!existsSync(at)) {
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  if (!statSync(at).isDirectory()) {
    throw new LoraTsError(`${flag} ${out}: ${at === resolve(out) ? "it" : at} is a file, not a folder`);
  }
  try {
    accessSync(at, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    const why = WRITE_ERRORS[code] ?? `cannot be written (${code || (e as Error).message})`;
    throw new LoraTsError(`${flag} ${out}: ${at} ${why}`);
  }
}

/**
 * The checks every output folder gets before any work: it does not overlap any of the inputs that
 * exist (a converted file, an input adapter), which are only ever read; and it can be written.
 */
export function refuseBadOut(out: string, inputs: readonly ReadOnlyPath[], flag = "--out"): void {
  refuseOverlap(
    out,
    inputs.filter((r) => existsSync(r.path)),
    flag,
  );
  refuseUnwritable(out, flag);
}
