import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { TrainerEvents } from "../../src/train/events.js";
import { type ProgressStream, progressReporter } from "../../src/train/progress.js";
import { emulate, stepMetrics } from "./terminal-screen.js";

class Capture extends Writable {
  text = "";
  constructor(
    readonly isTTY: boolean,
    readonly columns = 120,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
  get lines(): string[] {
    return this.text.split("\n").filter((l) => l !== "");
  }
}

const step = (s: number) => stepMetrics(s, 0.1);

function run(ev: TrainerEvents, from: number, to: number, evalEvery = 0, saveEvery = 0): void {
  for (let s = from; s <= to; s++) {
    ev.onStep?.(step(s));
    if (evalEvery > 0 && s % evalEvery === 0)
      ev.onEval?.({ type: "eval", step: s, loss: 1.2344, perplexity: 3.4346, tokens: 99 });
    if (saveEvery > 0 && s % saveEvery === 0) ev.onCheckpoint?.(`out/checkpoint-${s}`, s);
  }
}

const start = (totalSteps: number, startStep = 0) => ({
  totalSteps,
  startStep,
  trainableParams: 10,
  totalParams: 100,
  mode: "lora" as const,
});

test("non-TTY: about 20 step lines plus first and last, eval and checkpoint lines", () => {
  const out = new Capture(false);
  const ev = progressReporter({ stream: out as unknown as ProgressStream });
  ev.onStart?.(start(200));
  run(ev, 1, 200, 40, 100);
  ev.onEnd?.({} as never);
  const stepLines = out.lines.filter((l) => l.startsWith("step "));
  assert.equal(stepLines.length, 21); // step 1, then 10, 20, ..., 200
  assert.match(
    stepLines[0]!,
    /^step {3}1\/200 \| loss 3\.0000 \(last 3\.0000\) \| lr 2\.00e-4 \| 2048 tok\/s \| ETA /,
  );
  assert.match(stepLines.at(-1)!, /^step 200\/200 \| loss \d\.\d{4} \(last 2\.0050\)/);
  const evals = out.lines.filter((l) => l.startsWith("eval"));
  assert.equal(evals.length, 5);
  assert.equal(evals[0], "eval @ step 40: loss 1.234, perplexity 3.43");
  assert.deepEqual(
    out.lines.filter((l) => l.startsWith("checkpoint")),
    ["checkpoint @ step 100: out/checkpoint-100", "checkpoint @ step 200: out/checkpoint-200"],
  );
  assert.equal(out.lines.length, 21 + 5 + 2, "nothing else");
  assert.ok(!out.text.includes("\x1b"), "no escape codes");
});

test("non-TTY: odd totals, resumed runs and early ends still show the first and last step", () => {
  const a = new Capture(false);
  const ea = progressReporter({ stream: a as unknown as ProgressStream });
  ea.onStart?.(start(37));
  run(ea, 1, 37);
  ea.onEnd?.({} as never);
  assert.equal(a.lines.length, 20); // 1, 2, 4, ..., 36, 37
  assert.match(a.lines.at(-1)!, /^step 37\/37 /);

  const b = new Capture(false);
  const eb = progressReporter({ stream: b as unknown as ProgressStream });
  eb.onStart?.(start(200, 100));
  run(eb, 101, 200);
  eb.onEnd?.({} as never);
  assert.equal(b.lines.length, 21); // 101, then 105, ..., 200
  assert.match(b.lines[0]!, /^step 101\/200 /);

  const c = new Capture(false);
  const ec = progressReporter({ stream: c as unknown as ProgressStream });
  ec.onStart?.(start(200));
  run(ec, 1, 55); // e.g. stopped by a non-finite loss
  ec.onEnd?.({} as never);
  assert.match(c.lines.at(-1)!, /^step {2}55\/200 /);
  assert.equal(c.lines.length, 1 + 5 + 1);
});

test("no onStart, disabled: nothing throws", () => {
  const out = new Capture(false);
  const ev = progressReporter({ stream: out as unknown as ProgressStream });
  assert.doesNotThrow(() => {
    run(ev, 1, 25, 10, 10);
    ev.onEnd?.({} as never);
  });
  assert.match(out.lines[0]!, /^step 1 \| loss/);
  assert.match(out.lines.at(-1)!, /^step 25 \| loss/);
  const tty = new Capture(true);
  const et = progressReporter({ stream: tty as unknown as ProgressStream });
  assert.doesNotThrow(() => {
    et.onEval?.({ type: "eval", step: 0, loss: 1, perplexity: Math.E, tokens: 1 });
    run(et, 1, 3);
    et.onEnd?.({} as never);
  });
  const off = progressReporter({ stream: out as unknown as ProgressStream, enabled: false });
  assert.deepEqual(Object.keys(off), []);
});

test("TTY: a redrawn bar with step/total, loss, lr, tokens/s, ETA; eval lines above it", () => {
  const out = new Capture(true, 150);
  const ev = progressReporter({ stream: out as unknown as ProgressStream });
  ev.onStart?.(start(20));
  run(ev, 1, 20, 10);
  ev.onEnd?.({} as never);
  assert.ok(out.text.includes("\x1b"), "cursor control codes");
  const screen = emulate(out.text);
  assert.equal(screen.length, 3, JSON.stringify(screen));
  assert.equal(screen[0], "eval @ step 10: loss 1.234, perplexity 3.43");
  assert.equal(screen[1], "eval @ step 20: loss 1.234, perplexity 3.43");
  assert.match(
    screen[2]!,
    /^=+ 20\/20 \| loss \d\.\d{4} \(last 2\.0500\) \| lr 2\.00e-4 \| 2048 tok\/s \| ETA 0s$/,
  );
  assert.ok(out.text.endsWith("\n"));
});
