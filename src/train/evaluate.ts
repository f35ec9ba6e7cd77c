/**
 * Loss and perplexity over the tokens training would score (completion / assistant tokens unless
 * trainOnInputs), as `lora-ts eval` prints them: the mean over every scored token of the data set.
 */
import { DataLoader, padIdOf } from "../data/batching.js";
import { readDataset } from "../data/dataset-file.js";
import type { ExampleSource } from "../data/example-source.js";
import { buildExamples, type Example, maxLengthFor } from "../data/examples.js";
import { readTokenizer } from "../data/tokenizer-files.js";
import { validateAdapter } from "../lora/adapter.js";
import { loadAdapter } from "../lora/adapter-files.js";
import { resolveAdapterPath } from "../lora/adapter-path.js";
import { trainedBiases } from "../lora/bias.js";
import { resolveModelPath } from "../models/model-path.js";
import { listModules } from "../models/modules.js";
import { openModelDir } from "../models/open-model.js";
import { LoraTsError } from "../util/errors.js";
import { buildTrainStep, scoredTokens, shiftLabels, type TrainStep } from "./train-graph.js";

export interface LossResult {
  loss: number;
  perplexity: number;
  tokens: number;
}

/** Token-weighted mean loss of `examples` through a built step (dropout off). */
export async function meanLoss(
  step: TrainStep,
  values: readonly Float32Array[],
  examples: readonly Example[] | ExampleSource,
  opts: { batchSize: number; padId: number },
): Promise<LossResult> {
  let lossSum = 0;
  let tokens = 0;
  const loader = new DataLoader(examples, { batchSize: opts.batchSize, padId: opts.padId, shuffle: false });
  for (let i = 0; i < loader.batchesPerEpoch; i++) {
    const b = loader.next();
    const targets = shiftLabels(b.labels, b.batch, b.seq);
    const n = scoredTokens(targets);
    if (n === 0) continue;
    const { loss } = await step.run({ ...b, targets }, values, { train: false });
    lossSum += loss * n;
    tokens += n;
  }
  const loss = lossSum / Math.max(tokens, 1);
  return { loss, perplexity: Math.exp(loss), tokens };
}

export interface EvaluateOptions {
  model: string;
  adapter?: string;
  data: string;
  maxLength?: number;
  batchSize?: number;
  trainOnInputs?: boolean;
}

export async function evaluate(o: EvaluateOptions): Promise<LossResult> {
  const dir = await resolveModelPath(o.model);
  const model = openModelDir(dir);
  const tok = readTokenizer(dir);
  const maxLength = maxLengthFor(o.maxLength, model.config.maxPositions, 512);
  const { examples } = buildExamples(readDataset(o.data), tok, { maxLength, trainOnInputs: o.trainOnInputs });
  if (examples.length === 0) throw new LoraTsError(`${o.data}: no example has a token to score`);
  let selected: ReturnType<typeof validateAdapter> = [];
  let biases: ReturnType<typeof trainedBiases> = [];
  let values: Float32Array[] = [];
  const adapter = o.adapter ? loadAdapter(await resolveAdapterPath(o.adapter, { modelDir: dir })) : null;
  if (adapter) {
    const modules = listModules(model.config);
    selected = validateAdapter(adapter, modules, { modelType: model.config.modelType });
    biases = trainedBiases(adapter.config, modules, selected);
  }
  const step = await buildTrainStep(model, { mode: "lora", selected, dropout: 0, biases }, {}, false);
  if (adapter) values = step.params.map((p) => adapter.tensors.get(p.name)!.data);
  try {
    return await meanLoss(step, values, examples, { batchSize: o.batchSize ?? 4, padId: padIdOf(tok) });
  } finally {
    await step.release();
    model.weights.close();
  }
}
