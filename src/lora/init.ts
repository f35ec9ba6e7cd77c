/**
 * Adapter initialisation, as PEFT's LoraLayer.update_layer / reset_lora_parameters / pissa_init
 * (peft/tuners/lora/layer.py), seeded: every module draws from its own stream
 * `Rng.derive(seed, path)`, so the result does not depend on module order.
 *
 * Linear (lora_A [r, in], lora_B [out, r]):
 * - true (default): A ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in) (gain √(2/(1+5)), bound
 *   gain·√3/√fan_in with fan_in = in), B = 0.
 * - "gaussian": A ~ N(0, std = 1/r), B = 0.
 * - false: both keep nn.Linear's default init: A ~ U(−1/√in, 1/√in), B ~ U(−1/√r, 1/√r);
 *   the adapter is not an identity at start (used for tests).
 * - "pissa" / "pissa_niter_N": with W in [out, in] layout (Conv1D transposed first) and
 *   W ≈ U·S·Vᵀ its top-r SVD: S' = S / s, A = diag(√S')·Vᵀ, B = U·diag(√S'), and the frozen
 *   weight becomes the residual W_res = W − s·B·A (= W − U_r·S_r·V_rᵀ), stored back in W's layout.
 *
 * Embedding (lora_embedding_A [r, vocab], lora_embedding_B [dim, r]):
 * - any init but false (PEFT sends "gaussian"/"pissa" there too): A = 0, B ~ N(0, 1).
 * - false: A, B ~ N(0, 1) (torch.randn).
 *
 * Saving a PiSSA adapter so it merges onto the ORIGINAL base (PEFT's save_pretrained with
 * path_initial_model_for_weight_conversion, LoraModel.subtract_mutated_init): W = W_res + s·B₀A₀ and
 * after training W_res + s·B·A, so ΔW = s·(B·A − B₀·A₀) = s'·B'·A' with the rank-2r adapter
 * A' = cat_rows[A, A₀], B' = cat_cols[B, −B₀], r' = 2r and lora_alpha' = 2·alpha (rsLoRA:
 * √2·alpha) so that s' = s; rank_pattern/alpha_pattern values are doubled; init_lora_weights
 * becomes true. `pissaToLora` in adapter.ts does this. Without the conversion, a PiSSA adapter only
 * makes sense together with the residual base weights.
 */
import { LoraTsError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { InitLoraWeights } from "./config.js";
import { deltaWeight } from "./layer.js";
import { topSvd } from "./svd.js";
import type { SelectedModule } from "./targets.js";

export interface LoraPair {
  /** [r, in] (embedding: [r, vocab]) */
  A: Float32Array;
  /** [out, r] (embedding: [dim, r]) */
  B: Float32Array;
  /** PiSSA only: the new frozen base weight, in the base weight's storage layout. */
  residual?: Float32Array;
}

/**
 * Initial A and B for one module. `baseWeight` (in its storage layout: [out, in], Conv1D [in, out])
 * is needed for PiSSA only.
 */
export function initLoraPair(
  mod: Pick<SelectedModule, "path" | "kind" | "r" | "in" | "out" | "scaling" | "fanInFanOut">,
  init: InitLoraWeights,
  seed: number,
  baseWeight?: Float32Array,
): LoraPair {
  const { r, in: fin, out: fout } = mod;
  const rng = Rng.derive(seed, mod.path);
  const A = new Float32Array(r * fin);
  const B = new Float32Array(fout * r);
  if (mod.kind === "embedding") {
    if (init === false) rng.fillNormal(A);
    rng.fillNormal(B);
    return { A, B };
  }
  if (init === true) {
    const bound = 1 / Math.sqrt(fin);
    rng.fillUniform(A, -bound, bound);
    return { A, B };
  }
  if (init === false) {
    const bA = 1 / Math.sqrt(fin);
    const bB = 1 / Math.sqrt(r);
    rng.fillUniform(A, -bA, bA);
    rng.fillUniform(B, -bB, bB);
    return { A, B };
  }
  if (init === "gaussian") {
    rng.fillNormal(A, 0, 1 / r);
    return { A, B };
  }
  if (init === "pissa" || /^pissa_niter_\d+$/.test(init)) {
    if (!baseWeight) throw new LoraTsError(`${mod.path}: PiSSA init needs the base weight`);
    const niter = init === "pissa" ? undefined : Number(init.slice("pissa_niter_".length));
    return pissaInit(mod, baseWeight, niter, rng);
  }
  throw new LoraTsError(`${mod.path}: init_lora_weights ${JSON.stringify(init)} is not supported`);
}

function pissaInit(
  mod: Pick<SelectedModule, "path" | "r" | "in" | "out" | "scaling" | "fanInFanOut">,
  weight: Float32Array,
  niter: number | undefined,
  rng: Rng,
): LoraPair {
  const { r, in: fin, out: fout, scaling: s } = mod;
  if (weight.length !== fin * fout) {
    throw new LoraTsError(`${mod.path}: base weight has ${weight.length} values, expected ${fout}×${fin}`);
  }
  if (r > Math.min(fin, fout)) {
    throw new LoraTsError(`${mod.path}: PiSSA rank r=${r} exceeds min(in, out) = ${Math.min(fin, fout)}`);
  }
  // W in [out, in] layout, float64.
  const W = new Float64Array(fout * fin);
  if (mod.fanInFanOut) {
    for (let i = 0; i < fin; i++) for (let o = 0; o < fout; o++) W[o * fin + i] = weight[i * fout + o]!;
  } else W.set(weight);
  const { U, S, Vt } = topSvd(W, fout, fin, r, niter === undefined ? {} : { niter, rng });
  const A = new Float32Array(r * fin);
  const B = new Float32Array(fout * r);
  const sq = new Float64Array(r);
  for (let c = 0; c < r; c++) sq[c] = Math.sqrt(S[c]! / s);
  for (let c = 0; c < r; c++) for (let i = 0; i < fin; i++) A[c * fin + i] = sq[c]! * Vt[c * fin + i]!;
  for (let o = 0; o < fout; o++) for (let c = 0; c < r; c++) B[o * r + c] = U[o * r + c]! * sq[c]!;
  // Residual from the stored (float32) A and B, so that W_res + s·B·A reproduces W to rounding.
  const delta = deltaWeight({ shape: [r, fin], data: A }, { shape: [fout, r], data: B }, s);
  const residual = new Float32Array(fin * fout);
  for (let o = 0; o < fout; o++) {
    for (let i = 0; i < fin; i++) {
      const v = W[o * fin + i]! - delta[o * fin + i]!;
      if (mod.fanInFanOut) residual[i * fout + o] = v;
      else residual[o * fin + i] = v;
    }
  }
  return { A, B, residual };
}
