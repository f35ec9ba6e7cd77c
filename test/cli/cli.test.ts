import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const BIN = new URL("../../src/cli/main.js", import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

export function runCli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("lora-ts --version prints the package version", () => {
  const r = runCli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), pkg.version);
});

test("an unknown command exits non-zero with a message, not a stack trace", () => {
  const r = runCli(["no-such-command"]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown command|too many arguments/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});
