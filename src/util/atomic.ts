/**
 * Nothing is overwritten in place: files are written to a temporary name in the same folder and
 * renamed; directories are assembled in a temporary sibling and renamed into place.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { LoraTsError } from "./errors.js";

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/**
 * The temporary names a killed writer can leave behind: tempName's `.NAME.PID.HEX.tmp`, and
 * writeSafetensors' `NAME.PID.HEX.tmp` (src/io/safetensors.ts), both ending `.PID.HEX.tmp`.
 */
const STRAY_TEMP = /\.\d+\.[0-9a-f]{8,}\.tmp$/;

/**
 * Removes the temporary files and folders that writers killed mid-write (writeFileAtomic,
 * writeDirAtomic, removeDirAtomic, writeSafetensors) left directly in `dir`; returns their names. Only
 * for a folder no other process is writing into.
 */
export function removeStrayTemps(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const stray = readdirSync(dir).filter((name) => STRAY_TEMP.test(name));
  for (const name of stray) rmSync(join(dir, name), { recursive: true, force: true });
  return stray;
}

/**
 * Deletes a folder so that a kill at any moment leaves it whole or gone: it is first renamed to a
 * temporary name (which removeStrayTemps knows), then deleted.
 */
export function removeDirAtomic(dir: string): void {
  const tmp = tempName(dir);
  renameSync(dir, tmp);
  rmSync(tmp, { recursive: true, force: true });
}

/** Largest single write: fs.writeSync takes a 32-bit length, and may write less than asked. */
const IO_CHUNK = 1 << 30;

/**
 * Writes `path` through `write(put)` under a temporary name in the same folder, fsyncs, then renames it
 * into place: a reader sees the old file or the new one, never a part. On any failure the temporary
 * file is removed, the old file is left, and the error is one line naming `path`.
 */
export function writeFileAtomicWith(path: string, write: (put: (bytes: Uint8Array) => void) => void): void {
  const tmp = tempName(path);
  try {
    const fd = openSync(tmp, "w");
    try {
      write((bytes) => {
        for (let done = 0; done < bytes.byteLength; ) {
          done += writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.byteLength - done));
        }
      });
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    if (e instanceof LoraTsError) throw e;
    throw new LoraTsError(`${path}: cannot write (${(e as Error).message.split("\n")[0]})`);
  }
}

export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  writeFileAtomicWith(path, (put) => put(typeof data === "string" ? Buffer.from(data, "utf8") : data));
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Builds a directory by calling `fill(tmpDir)`, then renames it to `dir`. An existing non-empty `dir`
 * is an error unless `replace` is set, in which case the old one is moved aside first and removed
 * only after the new one is in place.
 */
export async function writeDirAtomic(
  dir: string,
  fill: (tmpDir: string) => void | Promise<void>,
  opts: { replace?: boolean } = {},
): Promise<void> {
  const exists = existsSync(dir) && readdirSync(dir).length > 0;
  if (exists && !opts.replace) throw new LoraTsError(`${dir}: already exists and is not empty`);
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = tempName(dir);
  mkdirSync(tmp);
  try {
    await fill(tmp);
    if (existsSync(dir)) {
      const old = tempName(`${dir}-old`);
      renameSync(dir, old);
      renameSync(tmp, dir);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, dir);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
