/**
 * The one rotary q/k row permutation. llama2.c, Meta's original Llama code and llama.cpp's GGUF files
 * rotate interleaved pairs (x0,x1), (x2,x3), ... of each head; Hugging Face's Llama rotates halves
 * (rotate_half pairs x_i with x_{i+hd/2}). HF's convert_llama_weights_to_hf.py therefore permutes the
 * rows of q_proj and k_proj within each head:
 *   permute(w, n_heads) = w.view(n_heads, hd/2, 2, in).transpose(1, 2).reshape(out, in)
 * i.e. new row h·hd + j·hd/2 + i  =  old row h·hd + 2i + j   (j ∈ {0,1}, i < hd/2),
 * with n_heads for q and n_kv_heads for k; llama.cpp's converter applies the inverse. With it an HF
 * rotate_half forward pass computes exactly the interleaved one (q·k dot products are invariant
 * under the same permutation of q and k; v and o are untouched).
 */

type Rows = Uint8Array | Uint16Array | Float32Array;

/**
 * Reorders the rows of a q or k projection (`nHeads` heads of rows, each row `rowLength` elements
 * of `w`; raw bytes work too, with rowLength in bytes). "toHf": interleaved pairs -> rotate_half
 * (HF's `permute`); "fromHf": the inverse. Returns a new array of the same type.
 */
export function permuteRopeRows<T extends Rows>(
  w: T,
  nHeads: number,
  rowLength: number,
  direction: "toHf" | "fromHf",
): T {
  const rows = w.length / rowLength;
  if (!Number.isInteger(rows) || rows % nHeads !== 0 || (rows / nHeads) % 2 !== 0) {
    throw new RangeError(`cannot permute a [${rows}, ${rowLength}] matrix over ${nHeads} heads for RoPE`);
  }
  const hd = rows / nHeads;
  const half = hd / 2;
  const out = (
    w instanceof Float32Array
      ? new Float32Array(w.length)
      : w instanceof Uint16Array
        ? new Uint16Array(w.length)
        : new Uint8Array(w.length)
  ) as T;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const interleaved = h * hd + 2 * i + j;
        const halves = h * hd + j * half + i;
        const [src, dst] = direction === "toHf" ? [interleaved, halves] : [halves, interleaved];
        out.set(w.subarray(src * rowLength, (src + 1) * rowLength) as never, dst * rowLength);
      }
    }
  }
  return out;
}
