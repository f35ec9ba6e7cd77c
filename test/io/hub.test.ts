/**
 * Hub ids against a local mock of the hub (test/helpers/mock-hub.ts); no test reaches the internet.
 * Each test gets a fresh HF_HUB_CACHE and its own environment.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, test } from "node:test";
import { globToRegExp, hubIdFor, hubSnapshot, parseHubId } from "../../src/io/hub.js";
import { hubCacheDir } from "../../src/io/hub-cache.js";
import { oneLineError, withHubEnv } from "../helpers/hub-env.js";
import { decoys, filesOf, tinyAdapter, tinyShardedLlama } from "../helpers/hub-fixtures.js";
import { commitId, etagOf, type MockFile, MockHub } from "../helpers/mock-hub.js";
import { tempDir } from "../models/fixtures.js";

const C1 = commitId("c1");
const C2 = commitId("c2");
const MODEL = "tiny-org/tiny-llama";
const NEEDED = [
  "config.json",
  "generation_config.json",
  "model-00001-of-00002.safetensors",
  "model-00002-of-00002.safetensors",
  "model.safetensors.index.json",
  "tokenizer.json",
  "tokenizer_config.json",
];

let hub: MockHub;
let v1: MockFile[];
let v2: MockFile[];
let adapter: MockFile[];

before(async () => {
  v1 = filesOf(tinyShardedLlama(3), decoys());
  v2 = filesOf(tinyShardedLlama(4), decoys());
  adapter = filesOf(tinyAdapter());
  hub = new MockHub([
    {
      id: MODEL,
      commits: [
        { sha: C1, files: v1 },
        { sha: C2, files: v2 },
      ],
    },
    { id: "tiny-org/tiny-lora", commits: [{ sha: commitId("lora"), files: adapter }] },
    { id: "tiny-org/private-llama", private: true, commits: [{ sha: commitId("p"), files: v2 }] },
    { id: "tiny-org/gated-llama", gated: { accepted: false }, commits: [{ sha: commitId("g"), files: v2 }] },
    {
      id: "tiny-org/pickles-only",
      commits: [{ sha: commitId("pk"), files: v2.filter((f) => !f.path.endsWith(".safetensors")) }],
    },
  ]);
  await hub.start();
});
after(() => hub.close());

/** Runs `fn` with a fresh cache and the hub variables set to `env` only; returns the cache too. */
const withHub = <T>(env: Record<string, string>, fn: (cache: string) => Promise<T>) =>
  withHubEnv(hub.url, env, fn);

function fileOf(files: MockFile[], path: string): MockFile {
  return files.find((f) => f.path === path)!;
}

/** Every path under `dir` (files and symlinks), relative, sorted. */
function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (lstatSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

test("a model id downloads config, tokenizer, generation config and the bf16 shards with their index, never the .bin, in huggingface_hub's cache layout", async () => {
  await withHub({}, async (cache) => {
    const before = hub.requests.length;
    const dir = await hubSnapshot(MODEL, { kind: "model" });
    const storage = join(cache, "models--tiny-org--tiny-llama");
    assert.equal(dir, join(storage, "snapshots", C2));
    assert.deepEqual(listTree(dir), NEEDED);
    for (const path of NEEDED) {
      const f = fileOf(v2, path);
      // snapshots/<commit>/<file> is a relative symlink to ../../blobs/<etag>, as Python makes it.
      assert.equal(readlinkSync(join(dir, path)), `../../blobs/${etagOf(f)}`);
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, path))), f.data);
    }
    assert.deepEqual(
      readdirSync(join(storage, "blobs")).sort(),
      NEEDED.map((p) => etagOf(fileOf(v2, p))).sort(),
    );
    assert.equal(readFileSync(join(storage, "refs", "main"), "utf8"), C2);
    assert.deepEqual(readdirSync(storage).sort(), ["blobs", "refs", "snapshots"]);
    const asked = hub.requests.slice(before).map((r) => r.path);
    assert.ok(!asked.some((p) => /pytorch_model\.bin|README|original/.test(p)), asked.join("\n"));
    // The shards came through the hub's redirect to its CDN, as on huggingface.co.
    assert.equal(asked.filter((p) => p.startsWith("/cdn/")).length, 2);
    // LFS files are named by their sha256, small files by their git blob id (40 hex).
    assert.equal(etagOf(fileOf(v2, "config.json")).length, 40);
    assert.equal(etagOf(fileOf(v2, "model-00001-of-00002.safetensors")).length, 64);
  });
});

test("a second use of a cached model makes no request", async () => {
  await withHub({}, async () => {
    const dir = await hubSnapshot(MODEL, { kind: "model" });
    const count = hub.requests.length;
    assert.equal(await hubSnapshot(MODEL, { kind: "model" }), dir);
    assert.equal(hub.requests.length, count);
  });
});

test("a cache as Python's huggingface_hub leaves it is used with zero requests", async () => {
  await withHub({}, async (cache) => {
    // Lay the cache out by hand, the way huggingface_hub.snapshot_download does (with the .bin too).
    const storage = join(cache, "models--tiny-org--tiny-llama");
    for (const f of v2.filter((f) => !f.path.includes("/"))) {
      const blob = join(storage, "blobs", etagOf(f));
      mkdirSync(dirname(blob), { recursive: true });
      writeFileSync(blob, f.data);
      const link = join(storage, "snapshots", C2, f.path);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(`../../blobs/${etagOf(f)}`, link);
    }
    mkdirSync(join(storage, "refs"));
    writeFileSync(join(storage, "refs", "main"), C2);
    const count = hub.requests.length;
    assert.equal(await hubSnapshot(MODEL, { kind: "model" }), join(storage, "snapshots", C2));
    assert.equal(hub.requests.length, count);
  });
});

test("HF_HUB_OFFLINE=1 uses the cache only: a hit works without requests, a miss is a one-line error", async () => {
  await withHub({ HF_HUB_OFFLINE: "1" }, async () => {
    const count = hub.requests.length;
    await oneLineError(hubSnapshot(MODEL, { kind: "model" }), MODEL, "HF_HUB_OFFLINE", "lora-ts download");
    assert.equal(hub.requests.length, count);
  });
  const cache = tempDir("lora-ts-hub-");
  await withHub({ HF_HUB_CACHE: cache }, () => hubSnapshot(MODEL, { kind: "model" }));
  await withHub({ HF_HUB_CACHE: cache, HF_HUB_OFFLINE: "1" }, async () => {
    const count = hub.requests.length;
    assert.equal(
      await hubSnapshot(MODEL, { kind: "model" }),
      join(cache, "models--tiny-org--tiny-llama", "snapshots", C2),
    );
    assert.equal(hub.requests.length, count);
  });
});

test("org/name@commit pins that revision and fetches its files", async () => {
  await withHub({}, async (cache) => {
    const dir = await hubSnapshot(`${MODEL}@${C1}`, { kind: "model" });
    assert.equal(dir, join(cache, "models--tiny-org--tiny-llama", "snapshots", C1));
    const shard = "model-00001-of-00002.safetensors";
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, shard))), fileOf(v1, shard).data);
    assert.notDeepEqual(fileOf(v1, shard).data, fileOf(v2, shard).data);
    assert.ok(hub.resolves(shard).some((r) => r.path.includes(`/resolve/${C1}/`)));
    // The `revision` option does the same (download --revision).
    assert.equal(await hubSnapshot(MODEL, { kind: "model", revision: C1 }), dir);
    await oneLineError(hubSnapshot(`${MODEL}@v9`, { kind: "model" }), `${MODEL}@v9`, 'no revision "v9"');
  });
});

test("a connection dropped mid-file is resumed with a Range request; no partial file ever has the final name", async () => {
  const shard = "model-00002-of-00002.safetensors";
  const f = fileOf(v2, shard);
  const blob = (cache: string) => join(cache, "models--tiny-org--tiny-llama", "blobs", etagOf(f));
  // Within one call: the cut is retried from where it stopped.
  await withHub({}, async (cache) => {
    hub.drop.set(shard, { after: 1000, times: 1 });
    const before = hub.resolves(shard).length;
    const dir = await hubSnapshot(MODEL, { kind: "model" });
    const asked = hub.resolves(shard).slice(before);
    assert.deepEqual(
      asked.map((r) => r.range),
      [undefined, "bytes=1000-"],
    );
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, shard))), f.data);
    assert.ok(!existsSync(`${blob(cache)}.incomplete`));
  });
  // Across calls: a download that keeps failing leaves only blobs/<etag>.incomplete; the next call continues it.
  await withHub({}, async (cache) => {
    hub.drop.set(shard, { after: 1000, times: 10 });
    await oneLineError(hubSnapshot(MODEL, { kind: "model" }), shard, "run the command again to resume");
    hub.drop.delete(shard);
    assert.ok(!existsSync(blob(cache)));
    assert.ok(!existsSync(join(cache, "models--tiny-org--tiny-llama", "snapshots", C2, shard)));
    assert.ok(!existsSync(join(cache, "models--tiny-org--tiny-llama", "refs", "main")));
    const have = readFileSync(`${blob(cache)}.incomplete`).byteLength;
    assert.equal(have, 3000);
    const before = hub.resolves(shard).length;
    const dir = await hubSnapshot(MODEL, { kind: "model" });
    assert.deepEqual(
      hub
        .resolves(shard)
        .slice(before)
        .map((r) => r.range),
      [`bytes=${have}-`],
    );
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, shard))), f.data);
    assert.ok(!existsSync(`${blob(cache)}.incomplete`));
  });
});

test("a leftover partial of other bytes does not become a wrong blob: the hash check starts the file over", async () => {
  const shard = "model-00001-of-00002.safetensors";
  const f = fileOf(v2, shard);
  await withHub({}, async (cache) => {
    const blob = join(cache, "models--tiny-org--tiny-llama", "blobs", etagOf(f));
    mkdirSync(dirname(blob), { recursive: true });
    writeFileSync(`${blob}.incomplete`, new Uint8Array(500).fill(0xab));
    const before = hub.resolves(shard).length;
    const dir = await hubSnapshot(MODEL, { kind: "model" });
    assert.deepEqual(
      hub
        .resolves(shard)
        .slice(before)
        .map((r) => r.range),
      ["bytes=500-", undefined],
    );
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, shard))), f.data);
    assert.ok(!existsSync(`${blob}.incomplete`));
  });
});

test("HF_TOKEN is sent as Authorization: Bearer on every request, and opens a private repo", async () => {
  await withHub({ HF_TOKEN: hub.token }, async () => {
    const before = hub.requests.length;
    await hubSnapshot("tiny-org/private-llama", { kind: "model" });
    const asked = hub.requests.slice(before);
    assert.ok(asked.length >= 3);
    for (const r of asked) assert.equal(r.authorization, `Bearer ${hub.token}`, r.path);
  });
  await withHub({}, async () => {
    const before = hub.requests.length;
    await hubSnapshot(MODEL, { kind: "model" });
    assert.ok(hub.requests.slice(before).every((r) => r.authorization === undefined));
  });
  // Without HF_TOKEN, the token `huggingface-cli login` saved in HF_HOME/token is used.
  const home = tempDir("lora-ts-hf-home-");
  writeFileSync(join(home, "token"), `${hub.token}\n`);
  await withHub({ HF_HOME: home }, async () => {
    const before = hub.requests.length;
    await hubSnapshot("tiny-org/private-llama", { kind: "model" });
    assert.ok(hub.requests.slice(before).every((r) => r.authorization === `Bearer ${hub.token}`));
  });
});

test("401, 404 and gated repositories are one-line errors that say what to do", async () => {
  await withHub({}, async () => {
    // The hub answers 401 RepoNotFound without a token (it does not tell private from missing).
    await oneLineError(
      hubSnapshot("tiny-org/private-llama", { kind: "model" }),
      "tiny-org/private-llama",
      "check the id",
      "HF_TOKEN",
    );
    await oneLineError(
      hubSnapshot("tiny-org/gated-llama", { kind: "model" }),
      "is gated",
      "accept its license",
      `${hub.url}/tiny-org/gated-llama`,
      "HF_TOKEN",
    );
  });
  await withHub({ HF_TOKEN: hub.token }, async () => {
    const m = await oneLineError(
      hubSnapshot("tiny-org/nope", { kind: "adapter" }),
      "tiny-org/nope",
      "no such adapter repository",
      "check the id",
    );
    assert.ok(!m.includes("set HF_TOKEN"));
    await oneLineError(hubSnapshot("tiny-org/gated-llama", { kind: "model" }), "is gated", "no access yet");
  });
  await withHub({ HF_TOKEN: "hf_wrong" }, async () => {
    await oneLineError(hubSnapshot("tiny-org/private-llama", { kind: "model" }), "refused HF_TOKEN (401)");
  });
  await withHub({ HF_TOKEN: "not-a-token" }, async () => {
    await oneLineError(hubSnapshot(MODEL, { kind: "model" }), "HF_TOKEN", "hf_");
  });
  await withHub({ HF_ENDPOINT: "http://127.0.0.1:9" }, async () => {
    await oneLineError(
      hubSnapshot(MODEL, { kind: "model" }),
      "cannot reach the hub at http://127.0.0.1:9",
      "HF_HUB_OFFLINE=1",
    );
  });
});

test("a repository with only .bin pickles is refused before any download", async () => {
  await withHub({}, async () => {
    const before = hub.resolves().length;
    await oneLineError(
      hubSnapshot("tiny-org/pickles-only", { kind: "model" }),
      "tiny-org/pickles-only",
      ".bin",
    );
    assert.equal(hub.resolves().length, before);
    // Not even when asked for by name.
    await oneLineError(
      hubSnapshot("tiny-org/pickles-only", { kind: "model", include: ["*.bin"] }),
      "no file matches --include",
    );
  });
});

test("an adapter id fetches adapter_config.json and adapter_model.safetensors", async () => {
  await withHub({}, async () => {
    const dir = await hubSnapshot("tiny-org/tiny-lora", { kind: "adapter" });
    assert.deepEqual(listTree(dir), ["adapter_config.json", "adapter_model.safetensors"]);
    for (const f of adapter) assert.deepEqual(new Uint8Array(readFileSync(join(dir, f.path))), f.data);
  });
});

test("--include globs choose the files; * stays within a folder", async () => {
  await withHub({}, async () => {
    const dir = await hubSnapshot(MODEL, { kind: "model", include: ["*.json"] });
    assert.deepEqual(
      listTree(dir),
      NEEDED.filter((p) => p.endsWith(".json")),
    );
  });
  assert.ok(globToRegExp("*.safetensors").test("model.safetensors"));
  assert.ok(!globToRegExp("*.safetensors").test("original/consolidated.safetensors"));
  assert.ok(globToRegExp("**/*.safetensors").test("original/consolidated.safetensors"));
});

test("hub ids: org/name[@revision], only when no local file or folder has that name", () => {
  assert.deepEqual(parseHubId("org/name"), { repo: "org/name", revision: undefined });
  assert.deepEqual(parseHubId("Org-1/na.me_2@v1.0"), { repo: "Org-1/na.me_2", revision: "v1.0" });
  assert.deepEqual(parseHubId(`org/name@${C1}`), { repo: "org/name", revision: C1 });
  for (const bad of [
    "name",
    "/abs/path",
    "./org/name",
    "org/name/more",
    "org/../x",
    "a/b@",
    "org/name.gguf@x y",
  ]) {
    assert.equal(parseHubId(bad), null, bad);
  }
  const cwd = process.cwd();
  const d = tempDir("lora-ts-local-");
  mkdirSync(join(d, "org", "name"), { recursive: true });
  try {
    process.chdir(d);
    assert.equal(hubIdFor("org/name"), null);
    assert.deepEqual(hubIdFor("org/other"), { repo: "org/other", revision: undefined });
  } finally {
    process.chdir(cwd);
  }
});

test("the cache is HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub", async () => {
  await withHub({ HF_HUB_CACHE: "/x/cache", HF_HOME: "/x/home" }, async () =>
    assert.equal(hubCacheDir(), "/x/cache"),
  );
  await withHub({ HF_HOME: "/x/home" }, async () => {
    delete process.env["HF_HUB_CACHE"];
    assert.equal(hubCacheDir(), "/x/home/hub");
    delete process.env["HF_HOME"];
    const xdg = process.env["XDG_CACHE_HOME"];
    delete process.env["XDG_CACHE_HOME"];
    try {
      assert.equal(hubCacheDir(), join(homedir(), ".cache", "huggingface", "hub"));
    } finally {
      if (xdg !== undefined) process.env["XDG_CACHE_HOME"] = xdg;
    }
  });
});
