import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, beforeEach, test } from "node:test";
import { dataCacheDir, dataFingerprint, fileContentHash, withDataCache } from "../../src/data/data-cache.js";

const tmp = mkdtempSync(path.join(tmpdir(), "lora-ts-data-cache-"));
const savedCache = process.env["LORA_TS_CACHE"];
process.env["LORA_TS_CACHE"] = path.join(tmp, "cache");
after(() => {
  if (savedCache === undefined) delete process.env["LORA_TS_CACHE"];
  else process.env["LORA_TS_CACHE"] = savedCache;
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => rmSync(path.join(tmp, "cache"), { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** A build that writes one file and counts its calls; open checks that file. */
function counter() {
  const c = {
    builds: 0,
    warnings: [] as string[],
    build: async (dir: string) => {
      c.builds++;
      writeFileSync(path.join(dir, "tokens"), "prepared");
    },
    open: (dir: string) => {
      if (readFileSync(path.join(dir, "tokens"), "utf8") !== "prepared") throw new Error("tokens: bad size");
    },
    warn: (line: string) => c.warnings.push(line),
  };
  return c;
}

test("the fingerprint follows file content and every setting, not the file's name", () => {
  const a = write("a.jsonl", '{"text":"one"}\n');
  const b = write("b.jsonl", '{"text":"one"}\n');
  const c = write("c.jsonl", '{"text":"two"}\n');
  const parts = { tokenizer: "t1", maxLength: 64, packing: false, nested: { x: 1, y: [1, 2] } };
  const base = dataFingerprint(parts, [a]);
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(dataFingerprint(parts, [b]), base, "same bytes under another name: same key");
  assert.equal(
    dataFingerprint({ nested: { y: [1, 2], x: 1 }, packing: false, maxLength: 64, tokenizer: "t1" }, [a]),
    base,
    "key order does not matter",
  );
  assert.notEqual(dataFingerprint(parts, [c]), base, "other content");
  assert.notEqual(dataFingerprint(parts, [a, b]), base, "another file added");
  for (const changed of [
    { ...parts, tokenizer: "t2" },
    { ...parts, maxLength: 65 },
    { ...parts, packing: true },
    { ...parts, nested: { x: 1, y: [2, 1] } },
    { ...parts, trainOnInputs: true },
  ]) {
    assert.notEqual(dataFingerprint(changed, [a]), base, JSON.stringify(changed));
  }
});

test("a file's content hash is sha256 of its bytes, also across the 4 MiB read size", () => {
  const big = Buffer.alloc((1 << 22) + 123, 7);
  const p = path.join(tmp, "big.bin");
  writeFileSync(p, big);
  assert.equal(fileContentHash(p), createHash("sha256").update(big).digest("hex"));
  assert.throws(() => fileContentHash(path.join(tmp, "missing.jsonl")), /missing\.jsonl: cannot read/);
});

test("a miss builds into the cache; the same key then hits without building", async () => {
  const c = counter();
  const first = await withDataCache({ fingerprint: "k1", ...c });
  assert.equal(first.hit, false);
  assert.equal(first.dir, path.join(dataCacheDir(), "k1"));
  assert.equal(c.builds, 1);
  const second = await withDataCache({ fingerprint: "k1", ...c });
  assert.equal(second.hit, true);
  assert.equal(c.builds, 1);
  const other = await withDataCache({ fingerprint: "k2", ...c });
  assert.equal(other.hit, false);
  assert.equal(c.builds, 2);
  assert.deepEqual(readdirSync(dataCacheDir()).sort(), ["k1", "k2"], "no temporary folder left");
});

test("a damaged cache folder is rebuilt with one warning", async () => {
  const c = counter();
  const { dir } = await withDataCache({ fingerprint: "k", ...c });
  writeFileSync(path.join(dir, "tokens"), "prep"); // cut short
  const again = await withDataCache({ fingerprint: "k", ...c });
  assert.equal(again.hit, false);
  assert.equal(c.builds, 2);
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0]!, /^data cache .*k: unreadable \(tokens: bad size\); preparing the data again$/);
  assert.equal(readFileSync(path.join(dir, "tokens"), "utf8"), "prepared");
});

test("a failed build leaves nothing under the key", async () => {
  const c = counter();
  await assert.rejects(
    withDataCache({
      ...c,
      fingerprint: "k",
      build: async (dir) => {
        writeFileSync(path.join(dir, "tokens"), "half");
        throw new Error("row 3: bad");
      },
    }),
    /row 3: bad/,
  );
  assert.equal(existsSync(path.join(dataCacheDir(), "k")), false);
  assert.deepEqual(readdirSync(dataCacheDir()), [], "no temporary folder left");
});

test("without a fingerprint (--no-data-cache) the folder is temporary and nothing is cached", async () => {
  const c = counter();
  const r = await withDataCache({ fingerprint: null, ...c });
  assert.equal(r.hit, false);
  assert.ok(existsSync(path.join(r.dir, "tokens")));
  assert.ok(!r.dir.startsWith(dataCacheDir()));
  r.dispose();
  assert.equal(existsSync(r.dir), false);
  assert.equal(existsSync(dataCacheDir()), false, "the cache is not touched");
});
