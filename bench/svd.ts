/**
 * SVD benchmark: topSvd, the PiSSA initialiser, on one 576×1536 matrix (SmolLM-135M's down_proj
 * shape), top-8, exact and randomized (niter 4). Prints the median of 5 runs in ms with the CPU
 * model, so figures from different machines can be told apart. The test suite checks topSvd's
 * results, not its speed (a time limit flakes on a shared CI host).
 *
 *   npm run build && node dist/bench/svd.js
 */
import { cpus } from "node:os";
import { topSvd } from "../src/lora/svd.js";
import { Rng } from "../src/util/rng.js";

const ROWS = 576;
const COLS = 1536;
const K = 8;
const RUNS = 5;

const m = new Rng(3).fillNormal(new Float32Array(ROWS * COLS)) as Float32Array;

function medianMs(f: () => void): number {
  f(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    f();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(RUNS / 2)]!;
}

const exact = medianMs(() => topSvd(m, ROWS, COLS, K));
const randomized = medianMs(() => topSvd(m, ROWS, COLS, K, { niter: 4, rng: new Rng(1) }));
const cpu = cpus();
console.log(`CPU: ${cpu[0]?.model ?? "unknown"} (${cpu.length} logical cores), Node ${process.version}`);
console.log(`topSvd ${ROWS}×${COLS} top-${K}, median of ${RUNS}:`);
console.log(`  exact               ${exact.toFixed(0)} ms`);
console.log(`  randomized, niter 4 ${randomized.toFixed(0)} ms`);
