/**
 * Safetensors files on disk (the format itself is safetensors-format.ts): opening a file as a
 * SafetensorsFile that reads one tensor at a time at its offset, and the atomic writer.
 */

import { randomBytes } from "node:crypto";
import {
  closeSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { FileFormatError, LoraTsError } from "../util/errors.js";
import { openForRead } from "../util/files.js";
import type { ByteSource } from "./byte-source.js";
import { SafetensorsFile, safetensorsParts, type TensorToWrite } from "./safetensors-format.js";

export * from "./safetensors-format.js";

/** Reads and writes go in chunks of at most this size: fs.readSync/writeSync take 32-bit lengths. */
const IO_CHUNK = 1 << 30;

/** Opens `path` and reads and validates its header (not the tensor data). */
export function openSafetensors(path: string): SafetensorsFile {
  return SafetensorsFile.fromSource(fileSource(path));
}

/** A file as a ByteSource: positioned reads on a descriptor held until close(). */
export function fileSource(path: string): ByteSource {
  let fd: number | undefined = openForRead(path, "safetensors file");
  let size: number;
  try {
    const stat = fstatSync(fd);
    // A directory opens fine on Linux and only fails on read, with a bare EISDIR.
    if (!stat.isFile()) throw new FileFormatError(path, "not a file (a directory or a device?)");
    size = stat.size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return {
    path,
    size,
    readInto(buf: Uint8Array, position: number): void {
      if (fd === undefined) throw new LoraTsError(`${path}: read after close()`);
      readFully(path, fd, buf, position);
    },
    close(): void {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/**
 * Writes `tensors` (and optional string metadata) to `path` as safetensors, laid out as
 * safetensorsParts says. Everything is checked before any file is created.
 *
 * The write is atomic: data goes to a temporary file next to `path`, which is fsynced and then
 * renamed over `path`, so a crash or full disk never leaves a half-written checkpoint where a
 * good one was, and readers that already have the old file open keep reading the old contents.
 * On any error the temporary file is removed.
 */
export function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[] | ReadonlyMap<string, Omit<TensorToWrite, "name">>,
  metadata?: Record<string, string>,
): void {
  const parts = safetensorsParts(path, tensors, metadata);
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx");
    for (const part of parts) writeFully(fd, part);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // Already failing; the original error is the one worth reporting.
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      // The temp file may never have been created.
    }
    if (e instanceof LoraTsError) throw e;
    throw new LoraTsError(`${path}: cannot write safetensors file: ${oneLine(errorMessage(e))}`);
  }
  syncDirectory(path);
}

/** Reads exactly buf.byteLength bytes at `position`, in chunks; a short file is a format error. */
function readFully(path: string, fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = readSync(fd, buf, done, Math.min(IO_CHUNK, buf.byteLength - done), position + done);
    if (n === 0) {
      throw new FileFormatError(
        path,
        `unexpected end of file at byte ${position + done} (wanted ${buf.byteLength - done} more): the file is truncated`,
      );
    }
    done += n;
  }
}

/** Writes all of `buf` at the current position; writeSync may write less than asked. */
function writeFully(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.byteLength) {
    done += writeSync(fd, buf, done, Math.min(IO_CHUNK, buf.byteLength - done));
  }
}

/**
 * fsyncs the directory holding `path` so the rename itself survives a crash. Best effort: some
 * platforms and file systems cannot open or sync directories, and the data is already safe.
 */
function syncDirectory(path: string): void {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // Ignored, see above.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}
