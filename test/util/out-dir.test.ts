/** util/out-dir.ts: outputs compared with read-only inputs by real path (issue #12). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LoraTsError } from "../../src/util/errors.js";
import {
  pathRelation,
  refuseBaseModelOut,
  refuseNonEmpty,
  refuseOverlap,
  refuseUnwritable,
} from "../../src/util/out-dir.js";

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

test("refuseUnwritable: an --out under a file or on a read-only file system is one line saying so", () => {
  const root = mkdtempSync(join(tmpdir(), "lora-ts-outdir-"));
  writeFileSync(join(root, "afile"), "x");
  refuseUnwritable(join(root, "new", "deeper")); // a writable folder is fine, nothing is created
  assert.throws(
    () => refuseUnwritable(join(root, "afile", "out")),
    new LoraTsError(`--out ${join(root, "afile", "out")}: ${join(root, "afile")} is a file, not a folder`),
  );
  assert.throws(
    () => refuseUnwritable(join(root, "afile"), "--output"),
    /^LoraTsError: --output .*: it is a file/,
  );
});

const roMount = join(tmpdir(), `lora-ts-ro-${process.pid}`);
function mountReadOnly(dir: string): boolean {
  if (process.getuid?.() !== 0) return false;
  mkdirSync(dir, { recursive: true });
  return spawnSync("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir]).status === 0;
}
const canMount = mountReadOnly(roMount);
after(() => {
  if (canMount) spawnSync("umount", [roMount]);
  rmSync(roMount, { recursive: true, force: true });
});

test("refuseUnwritable: a read-only file system is named as such, not as ENOENT (#12 item 11)", {
  skip: canMount ? false : "needs root to mount a read-only tmpfs",
}, () => {
  const out = join(roMount, "run");
  assert.throws(
    () => refuseUnwritable(out),
    new LoraTsError(`--out ${out}: ${roMount} is on a read-only file system`),
  );
});
