/**
 * Where a file's bytes come from: positioned reads, so a multi-gigabyte weight file is read one tensor
 * at a time. In Node that is a file descriptor (safetensors.ts's fileSource); in a browser, or for a
 * file already in memory, the bytes themselves (bytesSource).
 */
import { FileFormatError } from "../util/errors.js";

export interface ByteSource {
  /** The file's name or path, for messages. */
  readonly path: string;
  /** Its size in bytes. */
  readonly size: number;
  /** Fills `buf` with the bytes at `position`; a read past the end is a FileFormatError (truncated). */
  readInto(buf: Uint8Array, position: number): void;
  close(): void;
}

/** Bytes already in memory (a fetched or picked file) as a ByteSource. */
export function bytesSource(path: string, bytes: Uint8Array): ByteSource {
  return {
    path,
    size: bytes.byteLength,
    readInto(buf: Uint8Array, position: number): void {
      const end = position + buf.byteLength;
      if (end > bytes.byteLength)
        throw new FileFormatError(
          path,
          `unexpected end of file at byte ${bytes.byteLength} (wanted ${end - bytes.byteLength} more): the file is truncated`,
        );
      buf.set(bytes.subarray(position, end));
    },
    close(): void {},
  };
}
