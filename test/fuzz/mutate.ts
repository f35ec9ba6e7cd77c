/**
 * Mutation arbitraries: valid seed files (written by the project's own writers) changed a little, so
 * that inputs get past the magic number and the length fields into the parser's deeper checks, which
 * purely random bytes never reach. Bytes: bit flips, interesting values written over 1/2/4/8-byte
 * fields (0, -1, 2^31, 2^32, 2^53, 2^60, ...), truncation, deletion, duplication, splices from another
 * seed, random inserts. JSON: values anywhere in the document replaced by interesting ones, keys
 * deleted or added, then serialised (and sometimes byte-mutated too).
 */
import fc from "fast-check";

/** Integers a length or count field is most likely to be wrong with. */
export const INTERESTING_INTS: readonly bigint[] = [
  0n,
  1n,
  2n,
  3n,
  7n,
  8n,
  9n,
  31n,
  32n,
  33n,
  127n,
  128n,
  255n,
  256n,
  0x7fffn,
  0xffffn,
  0x10000n,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 60n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

type ByteOp =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; width: 1 | 2 | 4 | 8; value: bigint }
  | { kind: "truncate"; at: number }
  | { kind: "delete"; at: number; length: number }
  | { kind: "duplicate"; at: number; length: number; to: number }
  | { kind: "splice"; at: number; from: number; fromAt: number; length: number }
  | { kind: "insert"; at: number; bytes: Uint8Array };

/**
 * Positions are drawn as integers and taken modulo the current length, so one op list fits seeds of
 * any size. Unbiased: fast-check favours small numbers, which would put nearly every mutation in the
 * first bytes (the magic number) or on the first keys of a document.
 */
const pos = fc.noBias(fc.nat(2 ** 30));

const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: pos, bit: fc.nat(7) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("set" as const),
      at: pos,
      width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
      value: fc.oneof(fc.constantFrom(...INTERESTING_INTS), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: pos }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("delete" as const),
      at: pos,
      length: fc.integer({ min: 1, max: 64 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("duplicate" as const),
      at: pos,
      length: fc.integer({ min: 1, max: 64 }),
      to: pos,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("splice" as const),
      at: pos,
      from: pos,
      fromAt: pos,
      length: fc.integer({ min: 1, max: 256 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("insert" as const),
      at: pos,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
);

function applyOp(b: Uint8Array, op: ByteOp, seeds: readonly Uint8Array[]): Uint8Array {
  const at = op.at % (b.length + 1);
  switch (op.kind) {
    case "flip": {
      if (b.length === 0) return b;
      const out = b.slice();
      const i = Math.min(at, b.length - 1);
      out[i] = out[i]! ^ (1 << op.bit);
      return out;
    }
    case "set": {
      const out = b.slice();
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, op.value), true);
      for (let k = 0; k < op.width && at + k < out.length; k++) out[at + k] = bytes[k]!;
      return out;
    }
    case "truncate":
      return b.slice(0, at);
    case "delete":
      return concat(b.subarray(0, at), b.subarray(at + op.length));
    case "duplicate": {
      const piece = b.slice(at, at + op.length);
      const to = op.to % (b.length + 1);
      return concat(b.subarray(0, to), piece, b.subarray(to));
    }
    case "splice": {
      const other = seeds[op.from % seeds.length]!;
      const fromAt = op.fromAt % (other.length + 1);
      return concat(b.subarray(0, at), other.subarray(fromAt, fromAt + op.length), b.subarray(at));
    }
    case "insert":
      return concat(b.subarray(0, at), op.bytes, b.subarray(at));
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** 1 to `max` ops, mostly few: each further op makes it likelier the input dies at the first check. */
function opCount<T>(op: fc.Arbitrary<T>, max: number): fc.Arbitrary<T[]> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.array(op, { minLength: 1, maxLength: 1 }) },
    { weight: 2, arbitrary: fc.array(op, { minLength: 2, maxLength: 3 }) },
    { weight: 1, arbitrary: fc.array(op, { minLength: 1, maxLength: max }) },
  );
}

/** One of `seeds`, changed by 1–8 byte-level mutations (mostly one). */
export function mutatedBytes(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc
    .record({ seed: fc.nat(seeds.length - 1), ops: opCount(byteOp, 8) })
    .map(({ seed, ops }) => ops.reduce((b, op) => applyOp(b, op, seeds), seeds[seed]!));
}

/** `arb` one time in eight, else undefined (fc.option's `freq` is the odds of undefined, not of a value). */
export function sometimes<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: 7, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
}

/** JSON values that parsers of numbers, strings and lists most likely mishandle. */
export const interestingJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    0,
    -1,
    1,
    0.5,
    -0.5,
    2,
    3,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 60,
    1e308,
    -1e308,
    5e-324,
    "",
    "a\nb",
    "\r",
    "\u0000",
    "__proto__",
    "constructor",
    "(",
    "[",
    ".*",
    ".",
    "..",
    "/",
    "a".repeat(300),
    null,
    true,
    false,
    [],
    {},
    [0],
    [-1],
    [2 ** 60],
    [[]],
    { "": null },
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.jsonValue({ maxDepth: 2 }),
);

type JsonOp =
  | { kind: "replace"; target: number; value: unknown }
  | { kind: "delete"; target: number }
  | { kind: "add"; target: number; key: string; value: unknown };

const jsonKey = fc.oneof(
  fc.constantFrom("__proto__", "constructor", "", "a\nb"),
  fc.string({ maxLength: 10 }),
);

const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("replace" as const), target: pos, value: interestingJson }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("delete" as const), target: pos }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("add" as const),
      target: pos,
      key: jsonKey,
      value: interestingJson,
    }),
  },
);

/** Every container in `v` with its keys: where a mutation can go. */
function slots(
  v: unknown,
  out: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [],
) {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push({ parent: v, key: i });
      slots(x, out);
    });
  } else if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      out.push({ parent: v as Record<string, unknown>, key: k });
      slots(x, out);
    }
  }
  return out;
}

function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function applyJsonOp(doc: unknown, op: JsonOp): unknown {
  // A copy: fc.constantFrom hands out the same [] and {} every time, and inserting one into itself
  // (or changing it for every later input) must not happen.
  if (op.kind !== "delete") op = { ...op, value: structuredClone(op.value) };
  const all = slots(doc);
  if (op.kind === "add") {
    const containers = [
      doc,
      ...all.map((s) => (s.parent as Record<string, unknown>)[s.key as string]),
    ].filter((c) => typeof c === "object" && c !== null) as (Record<string, unknown> | unknown[])[];
    if (containers.length === 0) return doc;
    const c = containers[op.target % containers.length]!;
    if (Array.isArray(c)) c.splice(op.target % (c.length + 1), 0, op.value);
    else setOwn(c, op.key, op.value);
    return doc;
  }
  if (all.length === 0) return op.kind === "replace" ? op.value : doc;
  const s = all[op.target % all.length]!;
  if (op.kind === "replace") {
    if (Array.isArray(s.parent)) s.parent[s.key as number] = op.value;
    else setOwn(s.parent, s.key as string, op.value);
  } else if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
  else delete s.parent[s.key as string];
  return doc;
}

/** One of the JSON `seeds`, changed by 1–4 structural mutations, as JSON text. */
export function mutatedJson(seeds: readonly unknown[]): fc.Arbitrary<string> {
  return fc.record({ seed: fc.nat(seeds.length - 1), ops: opCount(jsonOp, 4) }).map(({ seed, ops }) => {
    const doc = ops.reduce((d, op) => applyJsonOp(d, op), structuredClone(seeds[seed]));
    return JSON.stringify(doc) ?? "null";
  });
}

/**
 * JSON documents: structurally mutated seeds (most inputs), byte-mutated seed text (broken syntax,
 * odd escapes) and arbitrary JSON values.
 */
export function jsonDocuments(seeds: readonly unknown[]): fc.Arbitrary<string> {
  const texts = seeds.map((s) => new TextEncoder().encode(JSON.stringify(s)));
  return fc.oneof(
    { weight: 6, arbitrary: mutatedJson(seeds) },
    { weight: 2, arbitrary: mutatedBytes(texts).map((b) => Buffer.from(b).toString("utf8")) },
    { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  );
}
