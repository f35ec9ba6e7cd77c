/** `npm run demo`'s command runs on a clean checkout (no ../shared) and prints what it promises. */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { REPO_ROOT } from "../helpers/shared.js";
import { tempDir } from "../models/fixtures.js";

const BEFORE = "== before training (base model), held-out questions ==";
const AFTER = "== after training (base + adapter), the same held-out questions ==";

/**
 * The answers printed under `header`: for each question in order, `<prompt, its newline as a space>
 * <answer>` on a new line, up to the blank line before the next `== ... ==` header. Each answer runs
 * to the next question's line (an answer may itself hold a newline), so the sections are read in the
 * demo's order and nothing else is taken for an answer.
 */
function section(text: string, header: string, prompts: string[]): string[] {
  const at = text.indexOf(`\n${header}\n`);
  assert.ok(at >= 0, `no section "${header}"`);
  const start = at + header.length + 2;
  const end = text.indexOf("\n\n== ", start);
  assert.ok(end > start, `${header}: no section after it`);
  const body = text.slice(start, end);
  const lineOf = (i: number) => `${prompts[i]!.replace("\n", " ")} `;
  let pos = 0;
  return prompts.map((_, i) => {
    assert.ok(
      body.startsWith(lineOf(i), pos),
      `${header}: question ${i + 1} expected at ${JSON.stringify(body.slice(pos))}`,
    );
    const from = pos + lineOf(i).length;
    const to = i + 1 < prompts.length ? body.indexOf(`\n${lineOf(i + 1)}`, from) : body.length;
    assert.ok(to >= from, `${header}: question ${i + 2} is missing`);
    pos = to + 1;
    return body.slice(from, to);
  });
}

test("lora-ts demo: before/after generations, loss curve, sizes, merged == unmerged", {
  skip: existsSync(join(REPO_ROOT, "models/default/model.safetensors"))
    ? false
    : "the default model is not built",
}, () => {
  const out = join(tempDir(), "demo");
  const r = runCli(["demo", "--out", out], { LORA_TS_SHARED: "/nonexistent" });
  assert.equal(r.code, 0, r.stderr);
  const text = r.stdout;
  // The demo shows the first 4 held-out questions, before and after.
  const heldOut = readFileSync(join(REPO_ROOT, "models/default/data/persona-heldout.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(0, 4)
    .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  const before = section(text, BEFORE, heldOut);
  const after = section(text, AFTER, heldOut);
  assert.ok(text.indexOf(BEFORE) < text.indexOf("== training LoRA"), "before comes before training");
  assert.ok(text.indexOf("== training LoRA") < text.indexOf(AFTER), "after comes after training");
  // The persona's frame: "A: Squawk! ... Pip out." (the base corpus has "Squawk" in its stories, so
  // the frame is what tells the adapter's answers apart, not the word).
  const frame = /^Squawk! .* Pip out\.$/;
  for (const [i, a] of before.entries()) {
    assert.doesNotMatch(a, /^Squawk!/, `before, question ${i + 1}: the base model already answers as Pip`);
    assert.doesNotMatch(
      a,
      /Pip out\.$/,
      `before, question ${i + 1}: the base model already signs off as Pip`,
    );
  }
  for (const [i, a] of after.entries())
    assert.match(a, frame, `after, question ${i + 1}: not in the persona's frame`);
  assert.match(text, /Saved size: .* adapter vs .* base/);
  assert.match(text, /max \|logit difference\| \S+ < 0\.0001: OK/);
  assert.ok(existsSync(join(out, "report.html")) && existsSync(join(out, "loss.png")));
});
