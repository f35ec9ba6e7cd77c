/** The command line of a small, fast sweep on the tiny test model, shared by the sweep tests. */

/** Train options that keep each run to a few tenths of a second. */
export const FAST_TRAIN = [
  "--max-steps",
  "3",
  "--max-length",
  "16",
  "--batch-size",
  "4",
  "--no-report",
  "--no-memory-check",
];

/** `lora-ts sweep` of `model` on `data` into `out`, without the grid flags. */
export function sweepArgs(model: string, data: string, out: string): string[] {
  return ["sweep", "--model", model, "--data", data, "--val-fraction", "0.25", "--out", out, ...FAST_TRAIN];
}
