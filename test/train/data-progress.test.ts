/** What the user sees while data is prepared: a live line on a terminal, plain lines elsewhere. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { DataProgress } from "../../src/train/events.js";
import { dataPreparationLines, progressReporter } from "../../src/train/progress.js";

function sink(isTTY: boolean) {
  const writes: string[] = [];
  const stream = Object.assign(Object.create(process.stderr) as NodeJS.WriteStream, {
    isTTY,
    columns: 200,
    write: (s: string) => {
      writes.push(s);
      return true;
    },
  });
  return { stream, writes };
}

const at = (stage: DataProgress["stage"], fraction: number, seconds: number): DataProgress => ({
  stage,
  rows: Math.round(52_000 * fraction),
  bytesDone: Math.round(27_700_000 * fraction),
  bytesTotal: 27_700_000,
  tokens: Math.round(9_000_000 * fraction),
  seconds,
  workers: 2,
  files: ["/data/alpaca.jsonl"],
});

test("off a terminal: a start line, a progress line at least every interval, a final line", () => {
  const { stream, writes } = sink(false);
  let now = 0;
  const r = progressReporter({ stream, everySeconds: 30, now: () => now, fd: -1 });
  r.onDataProgress!(at("start", 0, 0), "train");
  now = 10_000;
  r.onDataProgress!(at("running", 0.2, 10), "train"); // under 30 s: nothing
  now = 31_000;
  r.onDataProgress!(at("running", 0.5, 31), "train");
  now = 62_000;
  r.onDataProgress!(at("done", 1, 62), "train");
  assert.deepEqual(writes, [
    "preparing data alpaca.jsonl (27.7 MB, 2 threads)...\n",
    "preparing data alpaca.jsonl: 26.0k rows | 4.50M tokens | 145k tok/s | 50% | ETA 31s\n",
    "prepared data alpaca.jsonl: 52.0k rows, 9.00M tokens in 1m02s (145k tok/s, 2 threads)\n",
  ]);
});

test("on a terminal: one live line redrawn in place, replaced by the final line; a failure takes it down", () => {
  const { stream, writes } = sink(true);
  let now = 0;
  const r = progressReporter({ stream, now: () => now, fd: -1 });
  r.onDataProgress!(at("start", 0, 0), "val");
  now = 1000;
  r.onDataProgress!(at("running", 0.25, 1), "val");
  now = 1100; // within 200 ms of the last redraw: skipped
  r.onDataProgress!(at("running", 0.3, 1.1), "val");
  now = 1400;
  r.onDataProgress!(at("running", 0.5, 1.4), "val");
  r.onDataProgress!(at("done", 1, 2.8), "val");
  assert.deepEqual(writes, [
    "\r\x1b[2Kpreparing val data alpaca.jsonl: 13.0k rows | 2.25M tokens | 2250k tok/s | 25% | ETA 3s",
    "\r\x1b[2Kpreparing val data alpaca.jsonl: 26.0k rows | 4.50M tokens | 3214k tok/s | 50% | ETA 1s",
    "\r\x1b[2K",
    "prepared val data alpaca.jsonl: 52.0k rows, 9.00M tokens in 3s (3214k tok/s, 2 threads)\n",
  ]);
  writes.length = 0;
  now = 5000;
  r.onDataProgress!(at("running", 0.5, 1.4), "train");
  r.onDataProgress!(at("failed", 0.5, 1.5), "train");
  assert.equal(writes.at(-1), "\r\x1b[2K", "the live line is erased before the error is printed");
  // Another writer (an interrupt line) while the line is drawn: the line is erased first.
  writes.length = 0;
  now = 9000;
  r.onDataProgress!(at("running", 0.5, 1.4), "train");
  stream.write("interrupted before training started\n");
  assert.deepEqual(writes.slice(1), ["\r\x1b[2K", "interrupted before training started\n"]);
  r.onDataProgress!(at("done", 1, 2), "train");
  assert.equal(writes.length, 4, "no second erase: the line was already gone");
  assert.match(writes[3]!, /^prepared data alpaca\.jsonl/);
});

test("--no-progress: only the start and the final line", () => {
  const { stream, writes } = sink(false);
  const r = dataPreparationLines(stream);
  r.onDataProgress!(at("start", 0, 0), "train");
  for (let k = 1; k < 50; k++) r.onDataProgress!(at("running", k / 50, k * 100), "train");
  r.onDataProgress!(at("done", 1, 5000), "train");
  assert.equal(writes.length, 2);
  assert.match(writes[0]!, /^preparing data alpaca\.jsonl/);
  assert.match(writes[1]!, /^prepared data alpaca\.jsonl: 52\.0k rows/);
});
