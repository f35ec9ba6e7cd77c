/**
 * npm in this project (#12 item 13): the project's .npmrc holds only settings npm knows, so no npm call
 * warns, and `npx lora-ts` runs the CLI as the README says.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT } from "./helpers/shared.js";

const npm = (cmd: string, args: string[]) =>
  spawnSync(cmd, args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    env: { ...process.env, npm_config_loglevel: "warn" },
  });

test("npm calls in the project print no warning (no unknown .npmrc keys)", () => {
  const r = npm("npm", ["pkg", "get", "name"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '"lora-ts"');
  assert.equal(r.stderr, "");
});

test("`npx lora-ts --version` runs the built CLI", () => {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string };
  const r = npm("npx", ["--no-install", "lora-ts", "--version"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), pkg.version);
  assert.equal(r.stderr, "");
});
