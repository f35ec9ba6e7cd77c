/** util/atomic.ts: nothing is overwritten in place, and a failed write leaves the old files and no temporary one. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { writeDirAtomic, writeFileAtomic } from "../../src/util/atomic.js";
import { LoraTsError } from "../../src/util/errors.js";

const fresh = () => mkdtempSync(join(tmpdir(), "lora-ts-atomic-"));

test("writeFileAtomic replaces a file whole and leaves no temporary name", () => {
  const dir = fresh();
  const p = join(dir, "a.json");
  writeFileSync(p, "old");
  writeFileAtomic(p, "new content");
  assert.equal(readFileSync(p, "utf8"), "new content");
  assert.deepEqual(readdirSync(dir), ["a.json"]);
});

test("writeFileAtomic: a write that fails is one LoraTsError line, the old entry stays, no temporary is left", () => {
  const dir = fresh();
  const p = join(dir, "taken");
  mkdirSync(p); // a folder where the file should go: the rename fails
  writeFileSync(join(p, "inside"), "kept");
  assert.throws(
    () => writeFileAtomic(p, "x"),
    (e: unknown) =>
      e instanceof LoraTsError && e.message.startsWith(`${p}: cannot write (`) && !e.message.includes("\n"),
  );
  assert.deepEqual(readdirSync(dir), ["taken"]);
  assert.equal(readFileSync(join(p, "inside"), "utf8"), "kept");
});

test("writeDirAtomic: refuses a non-empty folder without replace; a failing fill leaves the old folder and no temporary", async () => {
  const dir = fresh();
  const out = join(dir, "out");
  await writeDirAtomic(out, (tmp) => writeFileSync(join(tmp, "one"), "1"));
  await assert.rejects(
    writeDirAtomic(out, (tmp) => writeFileSync(join(tmp, "two"), "2")),
    new LoraTsError(`${out}: already exists and is not empty`),
  );
  await assert.rejects(
    writeDirAtomic(
      out,
      (tmp) => {
        writeFileSync(join(tmp, "two"), "2");
        throw new Error("disk on fire");
      },
      { replace: true },
    ),
    /disk on fire/,
  );
  assert.deepEqual(readdirSync(dir), ["out"]);
  assert.deepEqual(readdirSync(out), ["one"]);
  // With replace, the new folder takes the old one's place as a whole: no file of the old one is left.
  await writeDirAtomic(out, (tmp) => writeFileSync(join(tmp, "two"), "2"), { replace: true });
  assert.deepEqual(readdirSync(dir), ["out"]);
  assert.deepEqual(readdirSync(out), ["two"]);
});
