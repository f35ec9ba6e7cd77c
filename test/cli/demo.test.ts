/** `npm run demo`'s command runs on a clean checkout (no ../shared) and prints what it promises. */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";

test("lora-ts demo: before/after generations, loss curve, sizes, merged == unmerged", {
  skip: existsSync(join(REPO_ROOT, "models/default/model.safetensors"))
    ? false
    : "the default model is not built",
}, () => {
  const out = join(tempDir(), "demo");
  const r = runCli(["demo", "--out", out], { LORA_TS_SHARED: "/nonexistent" });
  assert.equal(r.code, 0, r.stderr);
  const text = r.stdout;
  assert.match(text, /== before training \(base model\), held-out questions ==/);
  assert.match(text, /== after training \(base \+ adapter\), the same held-out questions ==/);
  const after = text.slice(text.indexOf("== after training"));
  assert.match(after, /A: Squawk!/, "the adapter teaches the persona's format");
  assert.match(text, /Saved size: .* adapter vs .* base/);
  assert.match(text, /max \|logit difference\| \S+ < 0\.0001: OK/);
  assert.ok(existsSync(join(out, "report.html")) && existsSync(join(out, "loss.png")));
});
