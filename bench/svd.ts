import { topSvd } from "../src/lora/svd.js";
import { Rng } from "../src/util/rng.js";
import { machineLine } from "./machine.js";

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
console.log(`machine: ${machineLine()}`);
console.log(`topSvd ${ROWS}×${COLS} top-${K}, median of ${RUNS}:`);
console.log(`  exact               ${exact.toFixed(0)} ms`);
console.log(`  randomized, niter 4 ${randomized.toFixed(0)} ms`);
