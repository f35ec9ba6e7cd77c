/**
 * One file rewritten with every fuzz input: written in place, then cut to its new length. Truncating
 * to zero first (as writeFileSync does) costs milliseconds on ext4, which flushes a file truncated to
 * zero when it is next closed; that would dominate a run.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from "node:fs";

const open = new Set<number>();
process.on("exit", () => {
  for (const fd of open) closeSync(fd);
});

export class InputFile {
  private fd: number;

  /** Creates (or truncates) `path`. */
  constructor(readonly path: string) {
    this.fd = openSync(path, "w+");
    open.add(this.fd);
  }

  /** Replaces the contents with `data`; returns the path. */
  write(data: Uint8Array | string): string {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    let done = 0;
    while (done < bytes.length) done += writeSync(this.fd, bytes, done, bytes.length - done, done);
    ftruncateSync(this.fd, bytes.length);
    return this.path;
  }
}
