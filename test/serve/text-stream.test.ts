/**
 * TextStream: incremental detokenization holds back incomplete UTF-8 and text that may begin a stop
 * string, never emits text a stop string later cuts, and assigns each token to the piece that
 * completes its text.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { TextStream } from "../../src/serve/text-stream.js";

/** A byte-level "tokenizer": each id is one byte; decoding is UTF-8 with U+FFFD for broken tails. */
const decode = (ids: number[]) => Buffer.from(ids).toString("utf8");
const bytes = (s: string) => [...Buffer.from(s, "utf8")];

function run(text: string, stops: string[] = []) {
  const ts = new TextStream<number>(decode, stops);
  const pieces: string[] = [];
  for (const [i, b] of bytes(text).entries()) {
    const p = ts.push(b, i);
    if (p.text) pieces.push(p.text);
    if (ts.stopped) break;
  }
  const last = ts.finish();
  if (last.text) pieces.push(last.text);
  return { pieces, final: ts.finalText, stopped: ts.stopped };
}

test("text-stream: a multi-byte character is emitted only once complete, never as U+FFFD", () => {
  const { pieces, final } = run("añ€😀b");
  assert.equal(final, "añ€😀b");
  assert.deepEqual(pieces, ["a", "ñ", "€", "😀", "b"]);
  assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
});

test("text-stream: a stop string cuts the text before it; nothing after or of it is emitted", () => {
  const r = run("Hello\n\nWorld", ["\n\n"]);
  assert.equal(r.final, "Hello");
  assert.equal(r.stopped, true);
  assert.equal(r.pieces.join(""), "Hello");
  // A prefix of a stop string that does not complete is emitted once it cannot be one.
  const s = run("ab\nc\n\nd", ["\n\n"]);
  assert.equal(s.final, "ab\nc");
  assert.equal(s.pieces.join(""), "ab\nc");
  assert.ok(!s.pieces.some((p) => p.endsWith("c\n")), "a newline that might start the stop is held back");
  // Several stops: the earliest occurrence wins; a stop at the very start gives "".
  assert.equal(run("xyzEND", ["z", "END"]).final, "xy");
  assert.equal(run("STOPabc", ["STOP"]).final, "");
  // No stop string: everything, unchanged.
  assert.equal(run("abc", ["q"]).final, "abc");
  assert.equal(run("abc", ["q"]).stopped, false);
});

test("text-stream: each token is reported once, with the offset of its text; tokens cut by a stop are dropped", () => {
  const ts = new TextStream<string>(decode, ["ST"]);
  const seen: { token: string; offset: number }[] = [];
  for (const [i, b] of bytes("aé_ST").entries()) {
    seen.push(...ts.push(b, `t${i}`).tokens);
    if (ts.stopped) break;
  }
  seen.push(...ts.finish().tokens);
  // "é" is two bytes: its first byte-token adds no text (offset 1, the same as the second).
  assert.deepEqual(seen, [
    { token: "t0", offset: 0 },
    { token: "t1", offset: 1 },
    { token: "t2", offset: 1 },
    { token: "t3", offset: 2 },
  ]);
  assert.equal(ts.finalText, "aé_");
});
