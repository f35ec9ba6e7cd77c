/** util/out-dir.ts: outputs compared with read-only inputs by real path (issue #12). */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LoraTsError } from "../../src/util/errors.js";
import { pathRelation, refuseBaseModelOut, refuseNonEmpty, refuseOverlap } from "../../src/util/out-dir.js";

test("pathRelation: same, inside, contains or apart, through symlinks and for paths not made yet", () => {
  const root = mkdtempSync(join(tmpdir(), "lora-ts-outdir-"));
  const base = join(root, "base");
  mkdirSync(base);
  writeFileSync(join(base, "config.json"), "{}");
  symlinkSync(base, join(root, "link"));
  assert.equal(pathRelation(base, base), "same");
  assert.equal(pathRelation(`${base}/`, base), "same");
  assert.equal(pathRelation(join(root, "link"), base), "same");
  assert.equal(pathRelation(join(base, "..", "base"), base), "same");
  assert.equal(pathRelation(join(base, "new", "deeper"), base), "inside");
  assert.equal(pathRelation(join(root, "link", "new"), base), "inside");
  assert.equal(pathRelation(root, base), "contains");
  assert.equal(
    pathRelation(join(root, "base2"), base),
    null,
    "a sibling whose name starts the same is apart",
  );
  assert.equal(pathRelation(join(root, "other"), base), null);
});

test("refuseBaseModelOut / refuseOverlap: one line naming --out and the reason; refuseNonEmpty needs force", () => {
  const root = mkdtempSync(join(tmpdir(), "lora-ts-outdir-"));
  const base = join(root, "base");
  mkdirSync(base);
  writeFileSync(join(base, "config.json"), "{}");
  const err = (fn: () => void) => {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof LoraTsError);
      return e.message;
    }
    return null;
  };
  assert.equal(
    err(() => refuseBaseModelOut(base, [base])),
    `--out ${base}: is the base model's folder ${base}, which is only ever read`,
  );
  assert.equal(
    err(() => refuseBaseModelOut(root, [base])),
    `--out ${root}: contains the base model's folder ${base}, which is only ever read`,
  );
  assert.equal(
    err(() => refuseBaseModelOut(join(root, "run"), [base])),
    null,
  );
  const file = join(base, "config.json");
  assert.equal(
    err(() => refuseOverlap(base, [{ path: file, what: "the input file" }])),
    `--out ${base}: contains the input file ${file}, which is only ever read`,
  );
  assert.equal(
    err(() => refuseNonEmpty(base, false)),
    `${base}: already exists and is not empty`,
  );
  assert.equal(
    err(() => refuseNonEmpty(base, true)),
    null,
  );
  assert.equal(
    err(() => refuseNonEmpty(join(root, "new"), false)),
    null,
  );
  assert.equal(
    err(() => refuseNonEmpty(file, false)),
    `${file}: exists and is not a directory`,
  );
});
