/** Option parsers shared by the commands: each failure is a one-line LoraTsError. */
import { LoraTsError } from "../util/errors.js";

export function parseIds(flag: string, text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const ids = parts.map(Number);
  if (parts.length === 0 || ids.some((n, i) => parts[i] === "" || !Number.isInteger(n) || n < 0)) {
    throw new LoraTsError(`${flag}: expected comma-separated token ids, got "${text}"`);
  }
  return ids;
}

export function parseNumber(
  flag: string,
  text: string,
  opts: { integer?: boolean; min?: number } = {},
): number {
  const n = Number(text);
  if (
    text.trim() === "" ||
    !Number.isFinite(n) ||
    (opts.integer && !Number.isInteger(n)) ||
    n < (opts.min ?? -Infinity)
  ) {
    const kind = opts.integer ? "an integer" : "a number";
    throw new LoraTsError(
      `${flag}: expected ${kind}${opts.min !== undefined ? ` >= ${opts.min}` : ""}, got "${text}"`,
    );
  }
  return n;
}
