/**
 * The heartbeat thread (#17): off a terminal "... still" lines; on one a spinner line redrawn in place
 * and erased before anything else is written. The main thread is blocked with Atomics.wait, as
 * onnxruntime blocks it (no timer of its own fires), and the bytes are read back from a file the
 * thread writes to, since a pseudo-terminal needs a package.
 */
import assert from "node:assert/strict";
import { writeSync } from "node:fs";
import { test } from "node:test";
import { ERASE, Heartbeat } from "../../src/train/heartbeat.js";
import { block, emulate, FRAME, sink } from "./terminal-screen.js";

test("off a terminal: '... still' lines after the silence, no escape codes", () => {
  const out = sink();
  const hb = new Heartbeat(out.fd, 0.05);
  hb.phase("creating the onnxruntime session (8,331 graph nodes)");
  block(400);
  hb.close();
  const text = out.text();
  const lines = text.split("\n").filter((l) => l !== "");
  assert.ok(lines.length >= 2, text);
  for (const l of lines)
    assert.equal(l, "  ... still creating the onnxruntime session (8,331 graph nodes) (0s)");
  assert.ok(!text.includes("\x1b") && !text.includes("\r"), JSON.stringify(text));
});

test("on a terminal: a spinner redrawn in place with the phase and its time, erased before a line", () => {
  const out = sink();
  const hb = new Heartbeat(out.fd, 30, { tty: true, quietMs: 50, frameMs: 25 });
  const what = "creating the onnxruntime session (8,331 graph nodes)";
  hb.phase(what, { columns: 100 });
  block(1300);
  hb.writing(() => writeSync(out.fd, "next line\n"), false); // as the reporter's writes go
  hb.close();
  const text = out.text();
  const frames = (text.match(FRAME) ?? []).map((f) => f.slice(ERASE.length));
  assert.ok(frames.length >= 10, JSON.stringify(text));
  assert.ok(new Set(frames.map((f) => f[0])).size > 1, "the spinner turns");
  for (const f of frames) assert.match(f, /^. creating the onnxruntime session \(8,331 graph nodes\) [01]s$/);
  assert.ok(
    frames.some((f) => f.endsWith(" 1s")),
    "the time goes on while the main thread is blocked",
  );
  assert.ok(text.endsWith(`${ERASE}${frames.at(-1)}${ERASE}next line\n`), JSON.stringify(text.slice(-200)));
  assert.deepEqual(emulate(text), ["next line"], "nothing of the spinner is left");
  assert.ok(!text.includes("still"), "no '... still' lines on a terminal");
});

test("on a terminal: the line is cut to the width, with the detail after the time", () => {
  const out = sink();
  const hb = new Heartbeat(out.fd, 30, { tty: true, quietMs: 20, frameMs: 20 });
  hb.phase("step 3/20", { detail: " | loss 2.1234 (last 2.0500) | ETA 40s", columns: 200 });
  block(200);
  hb.phase("step 4/20", { detail: " | loss 2.1234 (last 2.0500) | ETA 40s", columns: 20 });
  block(200);
  hb.close();
  const frames = (out.text().match(FRAME) ?? []).map((f) => f.slice(ERASE.length));
  assert.ok(
    frames.some((f) => / step 3\/20 0s \| loss 2\.1234 \(last 2\.0500\) \| ETA 40s$/.test(f)),
    frames.join(),
  );
  const narrow = frames.filter((f) => f.includes("step 4"));
  assert.ok(narrow.length > 0);
  for (const f of narrow) assert.equal([...f].length, 19, f);
});

test("on a terminal: a spinner drawn during many quick writes never mixes with them (the lock)", () => {
  const out = sink();
  const hb = new Heartbeat(out.fd, 30, { tty: true, quietMs: 1, frameMs: 1 });
  hb.phase("step 1/1", { columns: 80 });
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) {
    hb.writing(() => writeSync(out.fd, `line ${i}\n`), false);
    lines.push(`line ${i}`);
    block(i % 3); // sometimes long enough for a frame, sometimes racing it
  }
  hb.idle();
  block(50); // an ended phase draws nothing
  hb.close();
  const text = out.text();
  assert.ok((text.match(FRAME) ?? []).length > 20, "frames were drawn between the lines");
  assert.deepEqual(emulate(text), lines);
  // After the last line: nothing, or a frame that idle() erased.
  const tail = text.slice(text.lastIndexOf("line 299\n") + "line 299\n".length);
  assert.ok(tail === "" || tail.endsWith(ERASE), JSON.stringify(tail));
});

test("on a terminal: idle erases at once and no frame follows until the next phase", () => {
  const out = sink();
  const hb = new Heartbeat(out.fd, 30, { tty: true, quietMs: 20, frameMs: 10 });
  hb.phase("building the training graph");
  block(200);
  assert.equal(hb.idle(), true, "a frame was on the screen");
  writeSync(out.fd, "built\n");
  block(200);
  assert.equal(hb.idle(), false);
  hb.phase("creating the onnxruntime session (12 graph nodes)");
  block(200);
  hb.close();
  const text = out.text();
  const [before, after] = text.split("built\n") as [string, string];
  assert.ok(before.endsWith(ERASE));
  assert.ok(after.startsWith(ERASE));
  assert.match(after.slice(ERASE.length), /^. creating the onnxruntime session \(12 graph nodes\) 0s/);
  assert.ok(after.endsWith(ERASE), "close erases");
  assert.deepEqual(emulate(text), ["built"]);
});
