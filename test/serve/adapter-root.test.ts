/** adapter-root.ts and auth.ts on their own: names, containment by real path, bearer keys. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { AdapterRoot, checkAdapterName, isInside } from "../../src/serve/adapter-root.js";
import { bearerCheck } from "../../src/serve/auth.js";
import { ApiError } from "../../src/serve/errors.js";

const work = mkdtempSync(join(tmpdir(), "lora-ts-root-"));
after(() => rmSync(work, { recursive: true, force: true }));

const status = async (p: Promise<unknown> | (() => unknown)) => {
  try {
    await (typeof p === "function" ? p() : p);
    return 200;
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    return e.status;
  }
};

test("adapter-root: names follow [A-Za-z0-9._-]{1,64}", async () => {
  for (const ok of ["a", "my-adapter_1.0", "x".repeat(64)])
    assert.equal(await status(() => checkAdapterName(ok)), 200);
  for (const bad of ["", "x".repeat(65), "a/b", "../x", "a b", "é", "a\nb"])
    assert.equal(await status(() => checkAdapterName(bad)), 400, JSON.stringify(bad));
});

test("adapter-root: containment by path.relative, not by prefix", () => {
  assert.equal(isInside("/srv/a", "/srv/a"), true);
  assert.equal(isInside("/srv/a", "/srv/a/x/y"), true);
  assert.equal(isInside("/srv/a", "/srv/a/..x"), true);
  assert.equal(isInside("/srv/a", "/srv/ab"), false);
  assert.equal(isInside("/srv/a", "/srv"), false);
  assert.equal(isInside("/srv/a", "/etc/passwd"), false);
});

test("adapter-root: lora_path resolves through symlinks and must stay inside the root", async () => {
  const root = join(work, "root");
  const outside = join(work, "outside");
  mkdirSync(join(root, "good"), { recursive: true });
  mkdirSync(outside);
  symlinkSync(outside, join(root, "escape"));
  symlinkSync(join(root, "good"), join(root, "alias"));
  const r = await AdapterRoot.open(root);
  assert.equal(await r.resolve("good"), join(r.root, "good"));
  assert.equal(await r.resolve(join(root, "good")), join(r.root, "good"));
  assert.equal(await r.resolve("alias"), join(r.root, "good"), "a symlink inside the root is followed");
  assert.equal(await status(r.resolve("../outside")), 403);
  assert.equal(await status(r.resolve("good/../../outside")), 403);
  assert.equal(await status(r.resolve(outside)), 403);
  assert.equal(await status(r.resolve("/etc")), 403);
  assert.equal(await status(r.resolve("escape")), 403, "a symlink out of the root");
  assert.equal(await status(r.resolve("missing")), 400);
  assert.equal(await status(r.resolve("go\0od")), 400);
});

test("auth: a bearer key is accepted only exactly", async () => {
  const check = bearerCheck("s3cret");
  assert.equal(await status(() => check("Bearer s3cret")), 200);
  for (const bad of [undefined, "", "Bearer", "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"])
    assert.equal(await status(() => check(bad)), 401, String(bad));
});
