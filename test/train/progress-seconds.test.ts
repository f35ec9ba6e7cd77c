/**
 * Progress off a terminal (#12 item 10): besides the ~5% cadence, a step line at least every 30 s of
 * wall time, so a slow run (3000 steps of 7 s: a line every 150 steps, 17 minutes) still shows it is
 * alive. LORA_TS_PROGRESS_SECONDS sets the interval (tests set it, and do not wait 30 s).
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { StepMetrics } from "../../src/train/events.js";
import { type ProgressStream, progressReporter } from "../../src/train/progress.js";

class Capture extends Writable {
  text = "";
  readonly isTTY = false;
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  get lines(): string[] {
    return this.text.split("\n").filter((l) => l !== "");
  }
}

const step = (s: number): StepMetrics => ({
  type: "train",
  step: s,
  epoch: 0,
  loss: 2,
  lr: 2e-4,
  gradNorm: 1,
  tokens: 512,
  tokensPerSec: 70,
  elapsedSec: 7 * s,
});
const start = {
  totalSteps: 3000,
  startStep: 0,
  trainableParams: 10,
  totalParams: 100,
  mode: "lora" as const,
};

/** The steps printed when each step takes `secPerStep` of a fake clock. */
function printedSteps(secPerStep: number, opts: { everySeconds?: number } = {}): number[] {
  let now = 1_000_000;
  const out = new Capture();
  const ev = progressReporter({ stream: out as unknown as ProgressStream, now: () => now, ...opts });
  ev.onStart?.(start);
  for (let s = 1; s <= start.totalSteps; s++) {
    now += secPerStep * 1000;
    ev.onStep?.(step(s));
  }
  ev.onEnd?.({} as never);
  return out.lines.map((l) => Number(/^step\s+(\d+)\//.exec(l)?.[1]));
}

test("off a terminal, 3000 steps of 7 s: a step line at least every 30 s, besides every 150th", () => {
  const steps = printedSteps(7);
  // 30 s is 4.3 steps: every 5th step at most, and each 150th still there.
  for (let i = 1; i < steps.length; i++)
    assert.ok(steps[i]! - steps[i - 1]! <= 5, `a gap from step ${steps[i - 1]} to ${steps[i]}`);
  for (const s of [1, 150, 1500, 3000]) assert.ok(steps.includes(s), `step ${s}`);
  assert.equal(steps.length, new Set(steps).size, "no step printed twice");
});

test("fast steps print only the ~5% cadence (the 30 s rule adds nothing)", () => {
  const steps = printedSteps(0.01);
  assert.deepEqual(steps, [1, ...Array.from({ length: 20 }, (_, i) => 150 * (i + 1))]);
});

test("the interval is an option, else LORA_TS_PROGRESS_SECONDS (0: every step); a bad value is one line", () => {
  assert.equal(printedSteps(7, { everySeconds: 3600 }).length, 21, "an hour: only the 5% cadence");
  const saved = process.env["LORA_TS_PROGRESS_SECONDS"];
  try {
    process.env["LORA_TS_PROGRESS_SECONDS"] = "0";
    assert.equal(printedSteps(0.01).length, 3000);
    process.env["LORA_TS_PROGRESS_SECONDS"] = "soon";
    assert.throws(() => progressReporter({ stream: new Capture() as unknown as ProgressStream }), {
      message: 'LORA_TS_PROGRESS_SECONDS: expected a number of seconds >= 0, got "soon"',
    });
  } finally {
    if (saved === undefined) delete process.env["LORA_TS_PROGRESS_SECONDS"];
    else process.env["LORA_TS_PROGRESS_SECONDS"] = saved;
  }
});
