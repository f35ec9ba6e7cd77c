import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";

const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

test("lora-ts --version prints the package version", () => {
  const r = runCli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test("an unknown command exits non-zero with a message, not a stack trace", () => {
  const r = runCli(["no-such-command"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  // The error line first, then the usage (program.ts: showHelpAfterError).
  const [first, second, third] = r.stderr.split("\n");
  assert.equal(first, "error: unknown command 'no-such-command'");
  assert.equal(second, "");
  assert.match(third!, /^Usage: lora-ts /);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
