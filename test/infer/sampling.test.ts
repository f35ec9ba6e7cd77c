/**
 * The sampler's distribution. For fixed logits, the exact next-token distribution is computed here,
 * independently of src/, from Hugging Face's documented rules (transformers' logits_process.py, applied
 * in its order: temperature, top-k, top-p), and tens of thousands of seeded draws from sampleToken
 * are compared with it by a chi-square goodness-of-fit test. The seeds are fixed, so the outcome is
 * deterministic; the false-alarm probability (a correct sampler failing for an unlucky seed) is
 * ALPHA per case.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type SamplingOptions, sampleToken } from "../../src/infer/sampling.js";
import { Rng } from "../../src/util/rng.js";

/** Ten logits, all distinct except ids 2 and 7, which tie in the low tail. float32, as generate passes. */
const LOGITS = Float32Array.from([1.6, 0.4, -1.4, 2.3, 0.9, -0.2, 1.1, -1.4, -2.5, 0.0]);
/** Per-case false-alarm probability of the chi-square test. */
const ALPHA = 1e-6;

// ---- the reference distribution -----------------------------------------------------------------

function softmax(scores: number[]): number[] {
  const max = Math.max(...scores);
  const e = scores.map((s) => (s === -Infinity ? 0 : Math.exp(s - max)));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/**
 * Hugging Face's sampling distribution, rule for rule:
 * - TemperatureLogitsWarper: scores / temperature.
 * - TopKLogitsWarper: removes scores < the k-th largest score (tokens tied with it stay).
 * - TopPLogitsWarper: sorts ascending, softmax, cumulative sum; removes the tokens whose cumulative
 *   probability is <= 1 - top_p, and always keeps the most probable one.
 * - then softmax over what is left.
 * The cases must not sit on a knife edge: it throws when a top-p cumulative sum lies within 1e-3 of
 * 1 - top_p, or when a top-p cut separates tied tokens (which tied token HF keeps then depends on
 * torch.sort). A tie at the k-th score is a case of its own: every tied token stays.
 */
function hfDistribution(logits: ArrayLike<number>, opts: Required<SamplingOptions>): number[] {
  const n = logits.length;
  let s = Array.from(logits, (v) => v / opts.temperature);
  if (opts.topK > 0) {
    const k = Math.min(opts.topK, n);
    const kth = [...s].sort((a, b) => b - a)[k - 1]!;
    s = s.map((v) => (v < kth ? -Infinity : v));
  }
  if (opts.topP < 1) {
    const asc = Array.from({ length: n }, (_, i) => i).sort((a, b) => s[a]! - s[b]! || a - b);
    const p = softmax(asc.map((i) => s[i]!));
    let cum = 0;
    const remove = new Set<number>();
    asc.forEach((id, j) => {
      cum += p[j]!;
      if (p[j]! > 0)
        assert.ok(
          Math.abs(cum - (1 - opts.topP)) > 1e-3,
          `case design: cumulative ${cum} too near 1 - top_p`,
        );
      if (cum <= 1 - opts.topP && j < n - 1) remove.add(id);
    });
    for (const a of remove)
      for (let b = 0; b < n; b++)
        assert.ok(
          remove.has(b) || s[b] !== s[a] || s[a] === -Infinity,
          "case design: top-p cuts through tied tokens",
        );
    s = s.map((v, i) => (remove.has(i) ? -Infinity : v));
  }
  return softmax(s);
}

// ---- chi-square ---------------------------------------------------------------------------------

/** ln Γ(z), Lanczos (g = 7, 9 terms), |error| < 1e-13 for z > 0.5. */
function lnGamma(z: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const x = z - 1;
  let a = c[0]!;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  const t = x + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The regularized upper incomplete gamma Q(a, x): series below a + 1, continued fraction above. */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(-x + a * Math.log(x) - lnGamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= x / (a + n);
      sum += term;
    }
    return 1 - front * sum;
  }
  // Modified Lentz on the continued fraction for Γ(a, x).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return front * h;
}

/** P(χ²_df ≥ x). */
const chiSquareSf = (x: number, df: number): number => gammaQ(df / 2, x / 2);

// ---- draws --------------------------------------------------------------------------------------

interface Fit {
  counts: number[];
  expected: number[];
  chi2: number;
  df: number;
  pValue: number;
}

function drawAndFit(logits: Float32Array, opts: SamplingOptions, draws: number, seed: string): Fit {
  const full = { temperature: 1, topK: 0, topP: 1, ...opts };
  const probs = hfDistribution(logits, full);
  const rng = new Rng(seed);
  const random = () => rng.float();
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, opts, random)]!++;
  const expected = probs.map((p) => p * draws);
  let chi2 = 0;
  let df = -1;
  expected.forEach((e, i) => {
    if (e === 0) return;
    chi2 += (counts[i]! - e) ** 2 / e;
    df++;
  });
  return { counts, expected, chi2, df, pValue: df > 0 ? chiSquareSf(chi2, df) : 1 };
}

/** Draws, then: no token outside the kept set, and the chi-square p-value is not below ALPHA. */
function checkCase(
  t: { diagnostic: (m: string) => void },
  name: string,
  opts: SamplingOptions,
  draws = 40000,
  logits = LOGITS,
): Fit {
  const fit = drawAndFit(logits, opts, draws, `sampling.test ${name}`);
  const summary = `${name}: kept ${fit.df + 1}, χ²=${fit.chi2.toFixed(2)}, df=${fit.df}, p=${fit.pValue.toExponential(2)}`;
  t.diagnostic(summary);
  // The chi-square approximation wants every expected count to be large enough.
  for (const e of fit.expected) assert.ok(e === 0 || e >= 20, `case design: expected count ${e} too small`);
  fit.expected.forEach((e, i) => {
    if (e === 0) assert.equal(fit.counts[i], 0, `${name}: token ${i} is outside the kept set but was drawn`);
  });
  const detail = fit.counts.map((c, i) => `${i}:${c}/${fit.expected[i]!.toFixed(0)}`).join(" ");
  assert.ok(fit.pValue >= ALPHA, `${summary}\n  observed/expected: ${detail}`);
  return fit;
}

// ---- tests --------------------------------------------------------------------------------------

test("chi-square tail: incomplete gamma matches the closed forms for even df", () => {
  // For even df = 2m: P(χ² ≥ x) = e^{-x/2} Σ_{i<m} (x/2)^i / i!.
  for (const df of [2, 4, 6, 8, 10]) {
    for (const x of [0.5, 3, df, 2 * df, 30, 45, 60]) {
      let term = 1;
      let sum = 1;
      for (let i = 1; i < df / 2; i++) {
        term *= x / 2 / i;
        sum += term;
      }
      const exact = Math.exp(-x / 2) * sum;
      const got = chiSquareSf(x, df);
      assert.ok(
        Math.abs(got - exact) <= 1e-10 * Math.max(exact, 1e-300) + 1e-15,
        `df ${df} x ${x}: ${got} vs ${exact}`,
      );
    }
  }
  // Odd df: df = 1 at x = z² is the two-sided normal tail; 3.841459 is the 5% point, 23.92813 the 1e-6 one.
  assert.ok(Math.abs(chiSquareSf(3.841459, 1) - 0.05) < 1e-7);
  assert.ok(Math.abs(chiSquareSf(23.92813, 1) - 1e-6) < 1e-11);
});

test("sampling: temperature alone matches softmax(logits / T) (T = 0.7, 1.5)", (t) => {
  checkCase(t, "T=0.7", { temperature: 0.7 }, 50000);
  checkCase(t, "T=1.5", { temperature: 1.5 });
  // top-k ≥ vocab, top-k 0 and top-p 1 change nothing.
  checkCase(t, "T=1.5, top-k 10, top-p 1", { temperature: 1.5, topK: 10, topP: 1 });
  checkCase(t, "T=1.5, top-k 0", { temperature: 1.5, topK: 0 });
});

test("sampling: large logits (shifted by +800) give the same distribution, no overflow", (t) => {
  const shifted = LOGITS.map((v) => v + 800);
  const fit = checkCase(t, "T=0.7, logits+800", { temperature: 0.7 }, 40000, shifted);
  // Same distribution as the unshifted logits (to float32 rounding of the shift).
  const base = hfDistribution(LOGITS, { temperature: 0.7, topK: 0, topP: 1 });
  for (const [i, e] of fit.expected.entries()) assert.ok(Math.abs(e / 40000 - base[i]!) < 1e-4);
});

test("sampling: top-k keeps the k largest and renormalises (k = 3, 6)", (t) => {
  const k3 = checkCase(t, "top-k 3", { temperature: 1, topK: 3 });
  assert.deepEqual(
    k3.expected.map((e) => e > 0),
    [true, false, false, true, false, false, true, false, false, false],
  );
  checkCase(t, "T=1.5, top-k 6", { temperature: 1.5, topK: 6 });
});

test("sampling: top-k keeps every token tied with the k-th score, as Hugging Face does", (t) => {
  // The 8th largest logit is -1.4, shared by ids 2 and 7: both stay, so 9 tokens are kept.
  const tied = checkCase(t, "top-k 8 at a tie", { temperature: 1, topK: 8 });
  assert.deepEqual(
    tied.expected.map((e) => e > 0),
    [true, true, true, true, true, true, true, true, false, true],
  );
});

test("sampling: top-p keeps the smallest most-probable set reaching p, renormalised", (t) => {
  const p8 = checkCase(t, "top-p 0.8", { temperature: 1, topP: 0.8 });
  assert.equal(p8.df + 1, 4); // 0.489 + 0.243 + 0.147 < 0.8 <= ... + 0.121
  const p6 = checkCase(t, "top-p 0.6", { temperature: 1, topP: 0.6 });
  assert.equal(p6.df + 1, 2);
});

test("sampling: top-k then top-p (on the renormalised top-k distribution)", (t) => {
  // Top-p on the full distribution would keep 5 tokens here; after top-k 5 it keeps 4.
  const both = checkCase(t, "T=1.3, top-k 5, top-p 0.85", { temperature: 1.3, topK: 5, topP: 0.85 });
  assert.equal(both.df + 1, 4);
  const both2 = checkCase(t, "T=1.2, top-k 4, top-p 0.65", { temperature: 1.2, topK: 4, topP: 0.65 });
  assert.equal(both2.df + 1, 2);
});

test("sampling: temperature then top-p (the nucleus of the tempered distribution)", (t) => {
  // Top-p 0.9 keeps 4 tokens at T = 0.6 (6 at T = 1); top-p 0.75 keeps 5 at T = 2 (4 at T = 1).
  assert.equal(checkCase(t, "T=0.6, top-p 0.9", { temperature: 0.6, topP: 0.9 }).df + 1, 4);
  assert.equal(checkCase(t, "T=2, top-p 0.75", { temperature: 2, topP: 0.75 }).df + 1, 5);
});
