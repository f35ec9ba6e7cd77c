/**
 * progressReporter on a terminal while onnxruntime blocks (#17): the heartbeat's spinner shows the
 * build phases, then "step N/M" over the bar's line, and every write (ours, cli-progress's, anyone's)
 * erases it first. The "terminal" is a file the stream writes to synchronously, as stderr writes to
 * a tty, with isTTY forced and its descriptor given to the reporter.
 */
import assert from "node:assert/strict";
import { writeSync } from "node:fs";
import { Writable } from "node:stream";
import { test } from "node:test";
import { ERASE } from "../../src/train/heartbeat.js";
import { type ProgressStream, progressReporter } from "../../src/train/progress.js";
import { block, emulate, FRAME, sink, stepMetrics } from "./terminal-screen.js";

class TtyFile extends Writable {
  readonly isTTY = true;
  readonly columns = 150;
  constructor(readonly fd: number) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    writeSync(this.fd, chunk);
    cb();
  }
}

const step = (s: number) => stepMetrics(s);
const start = { totalSteps: 3, startStep: 0, trainableParams: 10, totalParams: 100, mode: "lora" as const };
const SESSION = "creating the onnxruntime session (8,331 graph nodes)";

/** A progress reporter on a (file-backed) terminal, with a short silence interval. */
function terminalReporter() {
  const out = sink();
  const stream = new TtyFile(out.fd);
  const ev = progressReporter({
    stream: stream as unknown as ProgressStream,
    fd: out.fd,
    everySeconds: 0.05,
  });
  return { out, stream, ev };
}

/** A run whose phases and steps each block the main thread for `ms`; returns what the terminal got. */
function blockedRun(ms: number): { text: string; stream: TtyFile } {
  const { out, stream, ev } = terminalReporter();
  ev.onPhase?.("building the training graph");
  block(ms);
  ev.onPhase?.(SESSION);
  block(ms);
  ev.onPhase?.(null);
  ev.onStart?.(start);
  for (let s = 1; s <= 3; s++) {
    ev.onPhase?.(`step ${s} of 3`, s);
    block(ms);
    ev.onStep?.(step(s));
  }
  ev.onPhase?.(null);
  ev.onEnd?.({} as never);
  return { text: out.text(), stream };
}

test("terminal: a spinner for each blocked phase and step, none left on the screen", () => {
  const { text, stream } = blockedRun(400);
  const frames = (text.match(FRAME) ?? []).map((f) => f.slice(ERASE.length));
  const has = (re: RegExp) =>
    assert.ok(
      frames.some((f) => re.test(f)),
      `${re} in ${JSON.stringify(frames)}`,
    );
  has(/^. building the training graph 0s$/);
  has(/^. creating the onnxruntime session \(8,331 graph nodes\) 0s$/);
  has(/^. step 1\/3 0s$/); // nothing to say about a first step yet
  has(/^. step 3\/3 0s \| loss \d\.\d{4} \(last 2\.5000\) \| ETA \d+s$/);
  // Each phase line is written after the spinner above it is erased, not appended to it.
  assert.ok(text.includes(`${ERASE}${SESSION}...\n`), JSON.stringify(text));
  const screen = emulate(text);
  assert.equal(screen.length, 3, JSON.stringify(screen));
  assert.equal(screen[0], "building the training graph...");
  assert.equal(screen[1], `${SESSION}...`);
  assert.match(
    screen[2]!,
    /^=+ 3\/3 \| loss \d\.\d{4} \(last 2\.3333\) \| lr 2\.00e-4 \| 2048 tok\/s \| ETA 0s$/,
  );
  assert.ok(!text.includes("still"), "no '... still' lines on a terminal");
  assert.ok(!Object.hasOwn(stream, "write"), "the stream's write is given back");
});

test("terminal: quick phases draw no spinner", () => {
  const { text } = blockedRun(0);
  assert.deepEqual(text.match(FRAME), null);
});

test("terminal: a line from someone else erases the spinner, which stays off until the next phase", () => {
  const { out, stream, ev } = terminalReporter();
  ev.onPhase?.(SESSION);
  block(300);
  stream.write("Error: out of memory\n"); // as the CLI prints a failed run's error
  block(300);
  const text = out.text();
  ev.onEnd?.({} as never);
  const [before, after] = text.split("Error: out of memory\n") as [string, string];
  assert.ok(before.endsWith(ERASE), JSON.stringify(before));
  assert.match(before.slice(0, -ERASE.length), / 0s$/);
  assert.equal(after, "");
  assert.deepEqual(emulate(text), [`${SESSION}...`, "Error: out of memory"]);
});
