/**
 * A worker thread of int8-quantize.ts: it quantizes the weights it is sent, one at a time, reading
 * each from its safetensors file with the same quantizeRows the main thread would run, and hands
 * Q, Qᵀ and the scales back as transferred buffers (moved, not copied).
 *
 * Message in: a QuantizeJob, or null to finish. Out: `{ index, q, qT, scale }`, or `{ index, error }`
 * with a one-line message.
 */
import { parentPort } from "node:worker_threads";
import { quantizeRows } from "../graph/int8.js";
import { openSafetensors } from "../io/safetensors.js";
import type { SafetensorsFile } from "../io/safetensors-format.js";
import type { QuantizeJob } from "./int8-quantize.js";

const files = new Map<string, SafetensorsFile>();
/** Reused across weights up to 64M values; a bigger one (an output head) gets its own array. */
let scratch = new Float32Array(0);
const SCRATCH_MAX = 64 * 1024 * 1024;

parentPort!.on("message", (job: QuantizeJob | null) => {
  if (job === null) {
    for (const f of files.values()) f.close();
    parentPort!.close();
    return;
  }
  try {
    let file = files.get(job.file);
    if (!file) {
      file = openSafetensors(job.file);
      files.set(job.file, file);
    }
    const n = job.out * job.in;
    if (n <= SCRATCH_MAX && scratch.length < n) scratch = new Float32Array(n);
    const stored = file.readFloat32(job.storedName, n <= SCRATCH_MAX ? scratch : undefined);
    const w = quantizeRows(stored, job.out, job.in, job.transposed, job.qmax);
    const buffers = [w.q.buffer, w.qT.buffer, w.scale.buffer] as ArrayBuffer[];
    parentPort!.postMessage({ index: job.index, q: w.q, qT: w.qT, scale: w.scale }, buffers);
  } catch (e) {
    parentPort!.postMessage({ index: job.index, error: (e as Error).message.split("\n")[0] });
  }
});
