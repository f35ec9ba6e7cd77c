/**
 * A model from files held in memory: a browser's fetched or picked Hugging Face folder (config.json,
 * tokenizer.json, tokenizer_config.json, generation_config.json, model.safetensors or the shards of
 * model.safetensors.index.json), by file name. The same checks as a folder opened in Node
 * (assemble-model.ts); sessions get each weight file's bytes as onnxruntime-web external data, named
 * as the graph's locations name them. There is no second weight format.
 */
import { Tokenizer } from "../data/tokenizer.js";
import { PLATFORM } from "../graph/ort-node.js";
import { SafetensorsFile } from "../io/safetensors-format.js";
import { indexShards, parseJsonObject, weightStore } from "../io/weight-store.js";
import { assembleModel, type HfModel } from "../models/assemble-model.js";
import { FileFormatError } from "../util/errors.js";
import type { FileMap } from "./protocol.js";

export interface WebModel {
  model: HfModel;
  tokenizer: Tokenizer;
}

const decoder = new TextDecoder();

/** Opens `files` as a model; `label` names the folder in messages ("default model", "my-folder"). */
export function openModelFiles(files: FileMap, label: string): WebModel {
  const at = (name: string) => `${label}/${name}`;
  const text = (name: string): string | null => {
    const bytes = files[name];
    return bytes === undefined ? null : decoder.decode(bytes);
  };
  const json = (name: string) => {
    const t = text(name);
    return t === null ? null : parseJsonObject(t, at(name));
  };
  const config = json("config.json");
  if (config === null) throw new FileFormatError(at("config.json"), "not found among the picked files");
  const tokenizerJson = text("tokenizer.json");
  if (tokenizerJson === null)
    throw new FileFormatError(at("tokenizer.json"), "not found among the picked files");
  const tokenizer = Tokenizer.fromTexts(
    tokenizerJson,
    text("tokenizer_config.json"),
    at("tokenizer.json"),
    at("tokenizer_config.json"),
  );
  const model = assembleModel({
    dir: label,
    config,
    configPath: at("config.json"),
    generationConfig: json("generation_config.json"),
    tokenizerConfig: json("tokenizer_config.json"),
    openWeights: (opts) => {
      const names = weightFileNames(files, label, json("model.safetensors.index.json"));
      const opened = names.map((n) => SafetensorsFile.fromBytes(at(n), files[n]!));
      const external = { kind: "bytes" as const, files: names.map((n) => ({ path: n, data: files[n]! })) };
      const byPath = new Map(opened.map((f, i) => [f.path, names[i]!]));
      // onnxruntime-node takes external data from files only: under Node (tests), graphs embed the tensors.
      const location = (f: SafetensorsFile) => (PLATFORM === "web" ? (byPath.get(f.path) ?? null) : null);
      const { store } = weightStore(opened, external, location, opts);
      return { store, where: () => at(names[0]!), describe: (p) => p };
    },
  });
  return { model, tokenizer };
}

/** model.safetensors, or the shards the index names (each must have been picked). */
function weightFileNames(files: FileMap, label: string, index: Record<string, unknown> | null): string[] {
  if (files["model.safetensors"] !== undefined) return ["model.safetensors"];
  if (index === null)
    throw new FileFormatError(
      `${label}/model.safetensors`,
      "not found among the picked files (nor model.safetensors.index.json)",
    );
  const { shards } = indexShards(index, `${label}/model.safetensors.index.json`);
  for (const s of shards)
    if (files[s] === undefined)
      throw new FileFormatError(`${label}/${s}`, "named by model.safetensors.index.json but not picked");
  return shards;
}
