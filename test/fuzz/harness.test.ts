/**
 * The harness's own checks can fail: a crash, a multi-line message, a hang and an allocation far
 * beyond the input are each reported, and a one-line LoraTsError or a return is not.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { LoraTsError } from "../../src/util/errors.js";
import { checkInput, type FuzzTarget, HANG_MS, runTarget } from "./harness.js";

function target(run: (n: number) => unknown): FuzzTarget<number> {
  return { name: "t", covers: "", arbitrary: fc.nat(9), run, size: () => 8 };
}

/** Keeps an allocation alive until the harness has measured it. */
const held: Uint8Array[] = [];

test("checkInput reports crashes, multi-line messages, hangs and allocations, and nothing else", async () => {
  assert.equal(
    (
      await checkInput(
        target(() => 1),
        0,
      )
    ).problem,
    undefined,
  );
  const refused = await checkInput(
    target(() => {
      throw new LoraTsError("x.gguf: one line");
    }),
    0,
  );
  assert.equal(refused.problem, undefined);
  assert.equal(refused.threw, true);
  const crash = await checkInput(
    target(() => {
      throw new TypeError("boom");
    }),
    0,
  );
  assert.match(crash.problem ?? "", /^crash: TypeError: boom/);
  const lines = await checkInput(
    target(() => {
      throw new LoraTsError("a\rb");
    }),
    0,
  );
  assert.match(lines.problem ?? "", /^multi-line LoraTsError/);
  const hang = await checkInput(
    target(() => {
      const end = performance.now() + HANG_MS + 50;
      while (performance.now() < end);
    }),
    0,
  );
  assert.match(hang.problem ?? "", /^hang: \d+ ms/);
  const hungry = await checkInput(
    target(() => {
      held.push(new Uint8Array(256 * 2 ** 20));
    }),
    0,
  );
  held.length = 0;
  assert.match(hungry.problem ?? "", /^allocation: memory grew \d+\.\d MiB for a 8-byte input/);
});

test("runTarget counts every input and fails explicit cases that are accepted", async () => {
  const t = target((n) => {
    if (n === 3) throw new RangeError("three");
  });
  t.explicit = [{ name: "must fail", input: 1 }];
  const s = await runTarget(t, 200, 1);
  assert.equal(s.runs, 200);
  assert.ok(s.failures > 0 && s.failures < 200);
  assert.equal(s.accepted, 200 - s.failures);
  assert.deepEqual(s.explicitFailures, ["must fail: accepted: no error was thrown"]);
  assert.match(s.counterexample ?? "", /^crash: RangeError: three <- 3$/);
});
