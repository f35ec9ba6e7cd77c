/**
 * The worker thread of data preparation (prepare.ts starts one per core): it rebuilds the tokenizer
 * and the example options from plain data, then prepares the chunks it is sent, one at a time, with
 * the same code the main thread runs when there is a single worker (prepare-chunk.ts).
 *
 * Messages in: a PrepareJob (a JSONL chunk, or parsed rows). Out: `{ type: "progress", index, ...ChunkProgress }` now and then, and
 * `{ type: "done", result }` when the chunk is written (its errors are in the result).
 */
import { parentPort, workerData } from "node:worker_threads";
import { type ExampleSettings, fromSettings, type PrepareJob, prepareJob } from "./prepare-chunk.js";
import { type JsonObject, Tokenizer } from "./tokenizer.js";

export interface PrepareWorkerData {
  tokenizerJson: JsonObject;
  tokenizerConfig: JsonObject;
  tokenizerSource: string;
  settings: ExampleSettings;
}

const data = workerData as PrepareWorkerData;
const tok = Tokenizer.fromJSON(data.tokenizerJson, data.tokenizerConfig, data.tokenizerSource);
const options = fromSettings(data.settings, tok);

parentPort!.on("message", (job: PrepareJob) => {
  const result = prepareJob(job, tok, options, (p) =>
    parentPort!.postMessage({ type: "progress", index: job.index, ...p }),
  );
  parentPort!.postMessage({ type: "done", result });
});
