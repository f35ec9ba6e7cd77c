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

test("an unknown command exits non-zero with one line, not a stack trace or the whole help", () => {
  const r = runCli(["no-such-command"]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, "error: unknown command 'no-such-command' (see: lora-ts --help)\n");
});

test("argument-parser errors are one line naming the flag and the command's help (#12 item 11)", () => {
  const cases: [string[], string][] = [
    [["train", "--bogus"], "error: unknown option '--bogus' (see: lora-ts train --help)"],
    [["train", "--r"], "error: option '--r <r>' argument missing (see: lora-ts train --help)"],
    [
      ["generate", "--model"],
      "error: option '--model <dir>' argument missing (see: lora-ts generate --help)",
    ],
    [["info"], "error: required option '--model <dir>' not specified (see: lora-ts info --help)"],
  ];
  for (const [args, line] of cases) {
    const r = runCli(args);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.stderr, `${line}\n`, args.join(" "));
    assert.equal(r.stdout, "", args.join(" "));
  }
});
