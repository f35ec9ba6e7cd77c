/**
 * Hub data sets (src/io/hub-dataset.ts, hub-data-files.ts) against the local mock hub: the split's
 * files by each of `datasets`' naming conventions, revisions, the cache, offline use, and the
 * one-line errors. No test reaches the internet.
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { readParquetRecords } from "../../src/data/parquet.js";
import { dataSplits } from "../../src/io/hub-data-files.js";
import { resolveDataFiles } from "../../src/io/hub-dataset.js";
import { promptCompletionParquet } from "../data/parquet-fixture.js";
import { oneLineError, withHubEnv } from "../helpers/hub-env.js";
import { commitId, etagOf, type MockFile, MockHub, type MockRepo } from "../helpers/mock-hub.js";
import { tempDir } from "../models/fixtures.js";

const text = (s: string) => Buffer.from(s);
const jsonl = (...texts: string[]) => text(texts.map((t) => `${JSON.stringify({ text: t })}\n`).join(""));

const SHARDED: MockFile[] = [
  { path: "README.md", data: text("---\nlicense: mit\n---\n") },
  { path: ".gitattributes", data: text("*.parquet filter=lfs\n") },
  { path: "data/train-00001-of-00002.parquet", data: promptCompletionParquet(3) },
  { path: "data/train-00000-of-00002.parquet", data: promptCompletionParquet(2) },
  { path: "data/test-00000-of-00001.parquet", data: promptCompletionParquet(1) },
];

/** One repository per naming convention: its files and the train split it should give. */
const CONVENTIONS: { id: string; files: MockFile[]; train: string[] }[] = [
  {
    id: "ds/sharded",
    files: SHARDED,
    train: ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"],
  },
  {
    id: "ds/top-files",
    files: [
      { path: "train.jsonl", data: jsonl("t1", "t2") },
      { path: "test.jsonl", data: jsonl("x") },
    ],
    train: ["train.jsonl"],
  },
  {
    id: "ds/split-folder",
    files: [
      { path: "train/b.jsonl", data: jsonl("b") },
      { path: "train/a.jsonl", data: jsonl("a") },
      { path: "valid/v.jsonl", data: jsonl("v") },
    ],
    train: ["train/a.jsonl", "train/b.jsonl"],
  },
  {
    id: "ds/suffixed",
    files: [
      { path: "alpaca-train.parquet", data: promptCompletionParquet(4) },
      { path: "alpaca-test.parquet", data: promptCompletionParquet(1) },
    ],
    train: ["alpaca-train.parquet"],
  },
  {
    id: "ds/config-folders",
    files: [
      { path: "default/train/0001.parquet", data: promptCompletionParquet(2) },
      { path: "default/train/0000.parquet", data: promptCompletionParquet(3) },
      { path: "default/validation/0000.parquet", data: promptCompletionParquet(1) },
    ],
    train: ["default/train/0000.parquet", "default/train/0001.parquet"],
  },
  {
    id: "ds/word-in-name",
    files: [
      { path: "data/my_train_set.json", data: text('[{"text":"a"}]') },
      { path: "data/my_eval_set.json", data: text('[{"text":"b"}]') },
    ],
    train: ["data/my_train_set.json"],
  },
  {
    // The README's configs win over the file names (train.jsonl is a decoy).
    id: "ds/configs",
    files: [
      {
        path: "README.md",
        data: text(
          [
            "---",
            "license: mit",
            "configs:",
            "- config_name: other",
            "  data_files: other/*.jsonl",
            "- config_name: main",
            "  default: true",
            "  data_dir: main",
            "  data_files:",
            "  - split: train",
            '    path: "qa_*.jsonl"',
            "  - split: test",
            "    path: holdout.jsonl",
            "---",
            "# A data set",
            "",
          ].join("\n"),
        ),
      },
      { path: "main/qa_2.jsonl", data: jsonl("q2") },
      { path: "main/qa_1.jsonl", data: jsonl("q1") },
      { path: "main/holdout.jsonl", data: jsonl("h") },
      { path: "other/x.jsonl", data: jsonl("x") },
      { path: "train.jsonl", data: jsonl("decoy") },
    ],
    train: ["main/qa_1.jsonl", "main/qa_2.jsonl"],
  },
  {
    id: "ds/one-file",
    files: [
      { path: "README.md", data: text("# one\n") },
      { path: "persona.jsonl", data: jsonl("p") },
    ],
    train: ["persona.jsonl"],
  },
];

const V1 = commitId("ds-v1");
const V2 = commitId("ds-v2");
let hub: MockHub;

before(async () => {
  const repos: MockRepo[] = CONVENTIONS.map((c) => ({
    id: c.id,
    type: "dataset",
    commits: [{ sha: commitId(c.id), files: c.files }],
  }));
  repos.push(
    {
      id: "ds/versions",
      type: "dataset",
      refs: { v1: V1 },
      commits: [
        { sha: V1, files: [{ path: "train.jsonl", data: jsonl("old") }] },
        { sha: V2, files: [{ path: "train.jsonl", data: jsonl("new") }] },
      ],
    },
    {
      id: "ds/script",
      type: "dataset",
      refs: { "refs/convert/parquet": commitId("script-parquet") },
      commits: [
        {
          sha: commitId("script-parquet"),
          files: [{ path: "default/train/0000.parquet", data: promptCompletionParquet(2) }],
        },
        {
          sha: commitId("script"),
          files: [
            { path: "script.py", data: text("import datasets\n") },
            { path: "README.md", data: text("# s\n") },
          ],
        },
      ],
    },
    {
      id: "ds/csv-only",
      type: "dataset",
      commits: [{ sha: commitId("csv"), files: [{ path: "train.csv", data: text("a,b\n") }] }],
    },
    {
      id: "ds/private",
      type: "dataset",
      private: true,
      commits: [{ sha: commitId("private"), files: [{ path: "train.jsonl", data: jsonl("secret") }] }],
    },
    {
      id: "ds/gated",
      type: "dataset",
      gated: { accepted: false },
      commits: [{ sha: commitId("gated"), files: [{ path: "train.jsonl", data: jsonl("g") }] }],
    },
    // A model of the same name must not be taken for the data set.
    {
      id: "ds/top-files",
      commits: [{ sha: commitId("model"), files: [{ path: "config.json", data: text("{}") }] }],
    },
  );
  hub = new MockHub(repos);
  await hub.start();
});
after(() => hub.close());

const withHub = <T>(env: Record<string, string>, fn: (cache: string) => Promise<T>) =>
  withHubEnv(hub.url, env, fn);

function fileOf(files: MockFile[], path: string): MockFile {
  return files.find((f) => f.path === path)!;
}

test("the train split by each of datasets' naming conventions, in datasets' order, in huggingface_hub's cache layout", async () => {
  await withHub({}, async (cache) => {
    for (const c of CONVENTIONS) {
      const paths = await resolveDataFiles(c.id, { flag: "--data" });
      const storage = join(cache, `datasets--${c.id.replace("/", "--")}`);
      const snapshot = join(storage, "snapshots", commitId(c.id));
      assert.deepEqual(
        paths,
        c.train.map((p) => join(snapshot, p)),
        c.id,
      );
      for (const p of c.train) {
        const f = fileOf(c.files, p);
        assert.equal(readlinkSync(join(snapshot, p)).split("/").at(-1), etagOf(f));
        assert.deepEqual(new Uint8Array(readFileSync(join(snapshot, p))), new Uint8Array(f.data));
      }
      assert.equal(readFileSync(join(storage, "refs", "main"), "utf8"), commitId(c.id));
      // Only the split's files were fetched: never the README or another split.
      const fetched = hub.resolves().map((r) => r.path);
      // Only the split's files (and the README, whose header may name them): never another split.
      assert.ok(!fetched.some((p) => p.startsWith(`/datasets/${c.id}/`) && /test|valid|eval/.test(p)));
    }
    // Parquet shards come through the hub's CDN redirect, as LFS files do, and read back whole.
    const [first, second] = await resolveDataFiles("ds/sharded", { flag: "--data" });
    const rows = [];
    for (const p of [first!, second!]) for await (const g of readParquetRecords(p)) rows.push(...g);
    assert.equal(rows.length, 5);
  });
});

test("--split picks another split; one that is not there names the flag, the repo, the split and the splits there are", async () => {
  await withHub({}, async (cache) => {
    const snapshot = join(cache, "datasets--ds--sharded", "snapshots", commitId("ds/sharded"));
    assert.deepEqual(await resolveDataFiles("ds/sharded", { flag: "--val-data", split: "test" }), [
      join(snapshot, "data/test-00000-of-00001.parquet"),
    ]);
    await oneLineError(
      resolveDataFiles("ds/sharded", { flag: "--val-data", split: "validation", splitFlag: "--val-split" }),
      "--val-data ds/sharded",
      'no split "validation" (--val-split)',
      "its splits: train, test",
    );
    await oneLineError(
      resolveDataFiles("ds/configs", { flag: "--data", split: "validation" }),
      'no split "validation"',
      "its splits: train, test",
    );
    await oneLineError(
      resolveDataFiles("ds/split-folder", { flag: "--data", split: "test" }),
      'no split "test"',
      "its splits: train, validation",
    );
  });
});

test("org/name@revision: a commit or a tag pins the files; refs/convert/parquet reads a script data set's conversion", async () => {
  await withHub({}, async (cache) => {
    const storage = join(cache, "datasets--ds--versions");
    const read = async (spec: string) =>
      readFileSync((await resolveDataFiles(spec, { flag: "--data" }))[0]!, "utf8");
    assert.match(await read("ds/versions"), /new/);
    assert.match(await read(`ds/versions@${V1}`), /old/);
    assert.match(await read("ds/versions@v1"), /old/);
    assert.equal(readFileSync(join(storage, "refs", "v1"), "utf8"), V1);
    await oneLineError(
      resolveDataFiles("ds/versions@v9", { flag: "--data" }),
      "--data ds/versions@v9",
      'no revision "v9"',
    );
    const [p] = await resolveDataFiles("ds/script@refs/convert/parquet", { flag: "--data" });
    assert.equal(
      p,
      join(
        cache,
        "datasets--ds--script",
        "snapshots",
        commitId("script-parquet"),
        "default/train/0000.parquet",
      ),
    );
  });
});

test("a second use makes no request; another split of the same commit fetches only its files", async () => {
  await withHub({}, async () => {
    const first = await resolveDataFiles("ds/split-folder", { flag: "--data" });
    const count = hub.requests.length;
    assert.deepEqual(await resolveDataFiles("ds/split-folder", { flag: "--data" }), first);
    assert.equal(hub.requests.length, count);
    // Another split of the same commit: no request for the listing, only its file.
    await resolveDataFiles("ds/split-folder", { flag: "--data", split: "validation" });
    assert.deepEqual(
      hub.requests.slice(count).map((r) => r.path),
      [`/datasets/ds/split-folder/resolve/${commitId("ds/split-folder")}/valid/v.jsonl`],
    );
  });
});

test("HF_HUB_OFFLINE: a miss is one line without a request; a hit, ours or a snapshot Python left, needs none", async () => {
  await withHub({ HF_HUB_OFFLINE: "1" }, async () => {
    const count = hub.requests.length;
    await oneLineError(
      resolveDataFiles("ds/top-files", { flag: "--data" }),
      "--data ds/top-files",
      "HF_HUB_OFFLINE",
    );
    assert.equal(hub.requests.length, count);
  });
  const cache = tempDir("lora-ts-hub-");
  const lora = tempDir("lora-ts-cache-");
  const first = await withHub({ HF_HUB_CACHE: cache, LORA_TS_CACHE: lora }, () =>
    resolveDataFiles("ds/top-files", { flag: "--data" }),
  );
  await withHub({ HF_HUB_CACHE: cache, LORA_TS_CACHE: lora, HF_HUB_OFFLINE: "1" }, async () => {
    const count = hub.requests.length;
    assert.deepEqual(await resolveDataFiles("ds/top-files", { flag: "--data" }), first);
    await oneLineError(
      resolveDataFiles("ds/top-files", { flag: "--data", split: "dev" }),
      'no split "dev"',
      "train, test",
    );
    assert.equal(hub.requests.length, count);
  });
  // A snapshot laid out by hand as huggingface_hub does, with no file list of ours.
  await withHub({ HF_HUB_OFFLINE: "1" }, async (hubCache) => {
    const storage = join(hubCache, "datasets--ds--sharded");
    const sha = commitId("ds/sharded");
    for (const f of SHARDED.filter((f) => f.path.startsWith("data/train"))) {
      const blob = join(storage, "blobs", etagOf(f));
      mkdirSync(dirname(blob), { recursive: true });
      writeFileSync(blob, f.data);
      const link = join(storage, "snapshots", sha, f.path);
      mkdirSync(dirname(link), { recursive: true });
      symlinkSync(`../../../blobs/${etagOf(f)}`, link);
    }
    mkdirSync(join(storage, "refs"));
    writeFileSync(join(storage, "refs", "main"), sha);
    const count = hub.requests.length;
    const paths = await resolveDataFiles("ds/sharded", { flag: "--data" });
    assert.equal(paths.length, 2);
    assert.equal(hub.requests.length, count);
  });
});

test("a local file always wins; a loading script, other file types, a missing repo and a bad path are one line", async () => {
  const d = tempDir("lora-ts-local-");
  const local = join(d, "train.jsonl");
  writeFileSync(local, jsonl("x"));
  assert.deepEqual(await resolveDataFiles(local, { flag: "--data" }), [local]);
  await withHub({}, async () => {
    await oneLineError(
      resolveDataFiles("ds/script", { flag: "--data" }),
      "--data ds/script",
      "loading script (script.py)",
      "ds/script@refs/convert/parquet",
    );
    await oneLineError(resolveDataFiles("ds/csv-only", { flag: "--data" }), "no data files", ".csv");
    await oneLineError(
      resolveDataFiles("ds/nope", { flag: "--data" }),
      "--data ds/nope",
      "no such data set repository",
    );
  });
  await oneLineError(
    resolveDataFiles("./missing.jsonl", { flag: "--val-data" }),
    "--val-data ./missing.jsonl: no such file",
  );
  // A relative path written like org/name, with a data file's extension, is never asked of the hub.
  await withHub({}, async () => {
    const before = hub.requests.length;
    await oneLineError(
      resolveDataFiles("data/train.jsonl", { flag: "--data" }),
      "--data data/train.jsonl: no such file",
    );
    assert.equal(hub.requests.length, before);
  });
});

test("HF_TOKEN opens a private data set and goes with every request; gated and private ones say what to do", async () => {
  await withHub({}, async () => {
    await oneLineError(resolveDataFiles("ds/private", { flag: "--data" }), "--data ds/private", "HF_TOKEN");
    await oneLineError(
      resolveDataFiles("ds/gated", { flag: "--data" }),
      "is gated",
      `${hub.url}/datasets/ds/gated`,
      "HF_TOKEN",
    );
  });
  await withHub({ HF_TOKEN: hub.token }, async () => {
    const before = hub.requests.length;
    const [p] = await resolveDataFiles("ds/private", { flag: "--data" });
    assert.match(readFileSync(p!, "utf8"), /secret/);
    const asked = hub.requests.slice(before);
    assert.ok(asked.length >= 3);
    for (const r of asked) assert.equal(r.authorization, `Bearer ${hub.token}`, r.path);
  });
});

test("download progress goes to stderr as for models", async () => {
  await withHub({}, async () => {
    const write = process.stderr.write;
    let err = "";
    process.stderr.write = ((chunk: string | Uint8Array) => {
      err += chunk.toString();
      return true;
    }) as typeof process.stderr.write;
    try {
      await resolveDataFiles("ds/suffixed", { flag: "--data", progress: true });
    } finally {
      process.stderr.write = write;
    }
    assert.match(err, /alpaca-train\.parquet {2}100%/);
  });
});

test("split rules: datasets' patterns, hidden and __ folders skipped, the most common kind of file", () => {
  const splits = (...paths: string[]) => Object.fromEntries(dataSplits(paths));
  assert.deepEqual(
    splits(
      "data/train-00000-of-00001.parquet",
      "data/train_sft-00000-of-00002.parquet",
      "data/test-00000-of-00001.parquet",
    ),
    {
      train: ["data/train-00000-of-00001.parquet"],
      test: ["data/test-00000-of-00001.parquet"],
      train_sft: ["data/train_sft-00000-of-00002.parquet"],
    },
  );
  assert.deepEqual(splits("training/x.jsonl", "dev.jsonl"), { train: ["training/x.jsonl"] });
  assert.deepEqual(splits("train.jsonl", "dev.jsonl", "evaluation.jsonl"), {
    train: ["train.jsonl"],
    validation: ["dev.jsonl"],
    test: ["evaluation.jsonl"],
  });
  // Words only: "trainer" or "retrain" is no split; "val" is not "validation"'s prefix.
  assert.deepEqual(splits("trainer.jsonl", "retrain.jsonl"), { train: ["retrain.jsonl", "trainer.jsonl"] });
  assert.deepEqual(splits("train_2.jsonl", "train_10.jsonl", "train_1.jsonl"), {
    train: ["train_1.jsonl", "train_10.jsonl", "train_2.jsonl"],
  });
  assert.deepEqual(splits(".cache/train.jsonl", "__pycache__/train.jsonl", "x/train.jsonl"), {
    train: ["x/train.jsonl"],
  });
  // Parquet outnumbers JSON, so the JSON file is not part of any split.
  assert.deepEqual(splits("train.parquet", "test.parquet", "extra-train.jsonl"), {
    train: ["train.parquet"],
    test: ["test.parquet"],
  });
  assert.deepEqual(splits("README.md", "dataset_info.json", "notes.csv"), {});
  // A README config with a data_dir only: the conventions apply inside it.
  const readme = "---\nconfigs:\n- config_name: default\n  data_dir: v2\n---\n";
  assert.deepEqual(
    Object.fromEntries(dataSplits(["train.jsonl", "v2/train.jsonl", "v2/test.jsonl"], readme)),
    {
      train: ["v2/train.jsonl"],
      test: ["v2/test.jsonl"],
    },
  );
  // A README without configs (or without a YAML header) changes nothing.
  assert.deepEqual(Object.fromEntries(dataSplits(["train.jsonl"], "# title\n")), { train: ["train.jsonl"] });
});
