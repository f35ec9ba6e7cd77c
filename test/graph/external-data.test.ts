/** Initializers stored as external data pointing straight into a .safetensors file. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { test } from "node:test";
import { emitModel } from "../../src/graph/emit.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/graph/half.js";
import { Graph } from "../../src/graph/ir.js";
import * as o from "../../src/graph/ops.js";
import { Session } from "../../src/graph/runtime.js";
import { openSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { randn, rng } from "./gradcheck.js";

test("a graph whose weights are external data inside a safetensors file runs bit-exactly", async () => {
  const dir = mkdtempSync(join(tmpdir(), "lora-ts-ext-"));
  try {
    const rand = rng(11);
    const w32 = Float32Array.from(randn(rand, 6 * 5));
    const w16 = f32ToF16(Float32Array.from(randn(rand, 5)));
    const wbf = f32ToBf16(Float32Array.from(randn(rand, 5)));
    const file = join(dir, "model.safetensors");
    writeSafetensors(file, [
      { name: "w32", dtype: "float32", shape: [6, 5], data: w32 },
      { name: "w16", dtype: "float16", shape: [5], data: w16 },
      { name: "wbf", dtype: "bfloat16", shape: [5], data: wbf },
    ]);
    const st = openSafetensors(file);
    const g = new Graph();
    const x = g.input("x", "float32", ["n", 5]);
    const w = (name: string) => {
      const t = st.tensors.get(name)!;
      return g.initializer(name, t.dtype, t.shape, {
        kind: "external",
        location: basename(st.path),
        offset: t.byteOffset,
        length: t.byteLength,
      });
    };
    // Identity outputs of each weight (bit-exact), plus a use of them in arithmetic.
    const w32v = w("w32");
    g.output(o.identity(w32v), "w32_out");
    g.output(o.cast(w("w16"), "float32"), "w16_out");
    g.output(o.cast(w("wbf"), "float32"), "wbf_out");
    g.output(o.add(o.fusedMatMul(x, w32v, { transB: true }), 0), "y");
    st.close();

    // Run from another working directory: locations resolve against the model folder, not cwd.
    const cwd = process.cwd();
    process.chdir(tmpdir());
    let out: Awaited<ReturnType<Session["run"]>>;
    try {
      const s = await Session.create(emitModel(g), { externalDataDir: dir });
      out = await s.run({ x: { dtype: "float32", dims: [1, 5], data: new Float32Array([1, 0, 0, 0, 0]) } });
      await s.release();
    } finally {
      process.chdir(cwd);
    }
    assert.deepEqual(new Uint8Array(out["w32_out"]!.data.buffer), new Uint8Array(w32.buffer));
    assert.deepEqual(out["w16_out"]!.data, f16ToF32(w16));
    assert.deepEqual(out["wbf_out"]!.data, bf16ToF32(wbf));
    // x = e0 picks column 0 of W·x, i.e. W[:, 0].
    assert.deepEqual(
      Array.from(out["y"]!.data as Float32Array),
      [0, 1, 2, 3, 4, 5].map((r) => w32[r * 5]!),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
