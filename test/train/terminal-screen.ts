/** A minimal terminal, to check what a screen shows after progress output (bars, spinners). */
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { StepMetrics } from "../../src/train/events.js";
import { tempDir } from "../models/fixtures.js";

/** The lines a terminal would show after `text`: handles \n, CR, ESC[nG (column), ESC[nK (erase), and ignores other escapes. */
export function emulate(text: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: this parses terminal escape codes
  const re = /\x1b\[([0-9;?]*)([A-Za-z])|\r|\n|[^\x1b\r\n]/gu;
  for (const m of text.matchAll(re)) {
    const t = m[0];
    if (t === "\n") {
      row++;
      col = 0;
      lines[row] ??= [];
    } else if (t === "\r") {
      col = 0;
    } else if (m[2] === "G") {
      col = Number(m[1] || 1) - 1;
    } else if (m[2] === "K") {
      const line = lines[row]!;
      if (m[1] === "2") line.length = 0;
      else if (m[1] === "" || m[1] === "0") line.length = Math.min(line.length, col);
    } else if (m[2] === undefined) {
      const line = lines[row]!;
      while (line.length < col) line.push(" ");
      line[col++] = t;
    }
  }
  return lines.map((l) => l.join("").trimEnd()).filter((l) => l !== "");
}

/** Holds the main thread, event loop included, for `ms`. */
export const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** A file to write to, and its text once done. */
export function sink(): { fd: number; text(): string } {
  const path = join(tempDir(), "stderr.txt");
  const fd = openSync(path, "w");
  return {
    fd,
    text() {
      closeSync(fd);
      return readFileSync(path, "utf8");
    },
  };
}

/** A heartbeat spinner frame: the erase, a braille frame, then the text up to the next CR or newline. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the spinner's erase is an escape code
export const FRAME = /\r\x1b\[2K[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] [^\r\n]*/g;

/** Step `s`'s metrics as the trainer reports them, `secondsPerStep` apart. */
export function stepMetrics(s: number, secondsPerStep = 1): StepMetrics {
  return {
    type: "train",
    step: s,
    epoch: 0,
    loss: 2 + 1 / s,
    lr: 2e-4,
    gradNorm: 1,
    tokens: 512,
    tokensPerSec: 2048,
    elapsedSec: s * secondsPerStep,
  };
}
