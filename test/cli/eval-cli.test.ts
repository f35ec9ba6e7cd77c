/**
 * `eval`'s numeric flags are checked like every other command's: a bad value is one line naming the
 * flag, not an internal variable (issue #12 item 11).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { tinyModel, wordData } from "../helpers/tiny-model.js";

test("eval: a bad --batch-size or --max-length is one line naming the flag", () => {
  const model = tinyModel("llama", 41);
  const data = wordData(4);
  for (const [flag, value, line] of [
    ["--batch-size", "abc", 'error: --batch-size: expected an integer >= 1, got "abc"'],
    ["--batch-size", "0", 'error: --batch-size: expected an integer >= 1, got "0"'],
    ["--max-length", "1.5", 'error: --max-length: expected an integer >= 1, got "1.5"'],
  ] as const) {
    const r = runCli(["eval", "--model", model, "--data", data, flag, value]);
    assert.equal(r.code, 1, `${flag} ${value}`);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr, `${line}\n`);
  }
  const ok = runCli(["eval", "--model", model, "--data", data, "--batch-size", "2", "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(Number.isFinite((JSON.parse(ok.stdout) as { loss: number }).loss));
});
