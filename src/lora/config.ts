/**
 * LoRA configuration, field for field the `adapter_config.json` of Hugging Face PEFT
 * (peft/tuners/lora/config.py), with PEFT's defaults and its validation rules, plus the fields
 * this project refuses because it does not implement them.
 *
 * The equations (see ../shared/DESIGN.md): for a frozen W [out, in], ΔW = s·B·A with
 * A [r, in], B [out, r] and s = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
 * rank_pattern / alpha_pattern override r and lora_alpha per module (see `rankFor`).
 *
 * Unknown fields (PEFT adds new ones every release) are kept verbatim in `raw` and written back by
 * `loraConfigToJson`, so an adapter made by a newer PEFT survives a load/save round trip.
 */
import { kindOf, preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";

export type LoraBias = "none" | "all" | "lora_only";
/** true: PEFT default (A kaiming-uniform, B = 0); false: A and B both random (non-identity). */
export type InitLoraWeights = boolean | "gaussian" | "pissa" | `pissa_niter_${number}`;

export const ALL_LINEAR = "all-linear";

export interface LoraConfig {
  peft_type: "LORA";
  task_type: string | null;
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** List: exact module name or ".suffix"; string: full-match regex, or "all-linear"; null: model default. */
  target_modules: string[] | string | null;
  exclude_modules: string[] | string | null;
  bias: LoraBias;
  fan_in_fan_out: boolean;
  use_rslora: boolean;
  init_lora_weights: InitLoraWeights;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  modules_to_save: string[] | null;
  inference_mode: boolean;
  /** Always false here: DoRA is refused on parse. */
  use_dora: boolean;
  /** The JSON object as read (key order and unknown fields kept); {} for a config built in code. */
  raw: Record<string, unknown>;
}

/** PEFT's per-architecture defaults for target_modules (peft/utils/constants.py). */
const DEFAULT_TARGETS: Record<string, string[]> = {
  llama: ["q_proj", "v_proj"],
  mistral: ["q_proj", "v_proj"],
  qwen2: ["q_proj", "v_proj"],
  gemma: ["q_proj", "v_proj"],
  gpt2: ["c_attn"],
};

/** The target_modules PEFT uses when none are given, for a config.json model_type. */
export function defaultTargets(modelType: string): string[] {
  const t = DEFAULT_TARGETS[modelType];
  if (!t) {
    throw new LoraTsError(
      `no default LoRA target_modules for model_type ${JSON.stringify(modelType)} ` +
        `(known: ${Object.keys(DEFAULT_TARGETS).join(", ")}); give target_modules explicitly`,
    );
  }
  return [...t];
}

/** A config with PEFT's defaults, overridden by `fields`. */
export function makeLoraConfig(fields: Partial<Omit<LoraConfig, "raw" | "peft_type">> = {}): LoraConfig {
  const cfg = { ...structuredClone(PEFT_DEFAULTS), task_type: "CAUSAL_LM", raw: {} } as LoraConfig;
  Object.assign(cfg, fields);
  return parseLoraConfig(loraConfigToJson(cfg));
}

/** The fields of LoraConfig this module knows (everything else is passed through). */
const KNOWN_FIELDS = [
  "peft_type",
  "task_type",
  "base_model_name_or_path",
  "r",
  "lora_alpha",
  "lora_dropout",
  "target_modules",
  "exclude_modules",
  "bias",
  "fan_in_fan_out",
  "use_rslora",
  "init_lora_weights",
  "layers_to_transform",
  "layers_pattern",
  "rank_pattern",
  "alpha_pattern",
  "modules_to_save",
  "inference_mode",
  "use_dora",
] as const;

/** The value PEFT assumes for each known field when a file leaves it out. */
const PEFT_DEFAULTS: Record<(typeof KNOWN_FIELDS)[number], unknown> = {
  peft_type: "LORA",
  task_type: null,
  base_model_name_or_path: null,
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: null,
  exclude_modules: null,
  bias: "none",
  fan_in_fan_out: false,
  use_rslora: false,
  init_lora_weights: true,
  layers_to_transform: null,
  layers_pattern: null,
  rank_pattern: {},
  alpha_pattern: {},
  modules_to_save: null,
  inference_mode: false,
  use_dora: false,
};

/**
 * PEFT fields that switch on features this project does not implement: each is refused when set to
 * anything but its "off" value. (Fields like eva_config / corda_config / loftq_config only matter
 * with the matching init_lora_weights, which is refused itself, so they are passed through.)
 */
const UNSUPPORTED_WHEN_SET: Record<string, string> = {
  use_dora: "DoRA (use_dora) is not supported",
  lora_bias: "lora_bias (a trainable bias on lora_B) is not supported",
  use_qalora: "QALoRA (use_qalora) is not supported",
  layer_replication: "layer_replication is not supported",
  trainable_token_indices: "trainable_token_indices is not supported",
  target_parameters: "target_parameters (LoRA on raw nn.Parameters) is not supported",
  alora_invocation_tokens: "activated LoRA (alora_invocation_tokens) is not supported",
  use_bdlora: "BD-LoRA (use_bdlora) is not supported",
  arrow_config: "Arrow routing (arrow_config) is not supported",
  velora_config: "VeLoRA (velora_config) is not supported",
  kasa_config: "KaSA (kasa_config) is not supported",
  monteclora_config: "MonteCLoRA (monteclora_config) is not supported",
};

function isOff(v: unknown): boolean {
  return (
    v === undefined ||
    v === null ||
    v === false ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === "object" && v !== null && Object.keys(v).length === 0)
  );
}

/**
 * Validates an adapter_config.json object (or a plain object built in code) and returns a
 * LoraConfig. Missing fields take PEFT's defaults. Every error is one line naming the file (when
 * given) and the field.
 */
export function parseLoraConfig(json: unknown, file?: string): LoraConfig {
  const where = file ? `${file}: ` : "";
  const fail = (field: string, problem: string): never => {
    throw new LoraTsError(`${where}LoRA config field ${field}: ${problem}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new LoraTsError(`${where}LoRA config must be a JSON object, got ${kindOf(json)}`);
  }
  const o = json as Record<string, unknown>;
  const get = (k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);

  const peftType = get("peft_type");
  if (peftType !== undefined && peftType !== "LORA") {
    fail("peft_type", `${JSON.stringify(peftType)} is not supported (only "LORA")`);
  }
  for (const [field, msg] of Object.entries(UNSUPPORTED_WHEN_SET)) {
    if (!isOff(get(field))) fail(field, `${msg} (got ${preview(get(field))})`);
  }

  const r = get("r") ?? 8;
  if (typeof r !== "number" || !Number.isSafeInteger(r) || r <= 0) {
    fail("r", `must be a positive integer, got ${preview(r)}`);
  }
  const alpha = get("lora_alpha") ?? 8;
  if (typeof alpha !== "number" || !Number.isFinite(alpha)) {
    fail("lora_alpha", `must be a number, got ${preview(alpha)}`);
  }
  const dropout = get("lora_dropout") ?? 0;
  if (typeof dropout !== "number" || !(dropout >= 0 && dropout < 1)) {
    fail("lora_dropout", `must be a number in [0, 1), got ${preview(dropout)}`);
  }
  const bias = get("bias") ?? "none";
  if (bias !== "none" && bias !== "all" && bias !== "lora_only") {
    fail("bias", `must be "none", "all" or "lora_only", got ${preview(bias)}`);
  }
  const bool = (field: string, dflt: boolean): boolean => {
    const v = get(field) ?? dflt;
    if (typeof v !== "boolean") fail(field, `must be true or false, got ${preview(v)}`);
    return v as boolean;
  };
  const strOrNull = (field: string): string | null => {
    const v = get(field) ?? null;
    if (v !== null && typeof v !== "string") fail(field, `must be a string or null, got ${preview(v)}`);
    return v as string | null;
  };
  const strListOrRegex = (field: string): string[] | string | null => {
    const v = get(field) ?? null;
    if (v === null) return null;
    if (typeof v === "string") {
      checkRegex(v, (p) => fail(field, p));
      return v;
    }
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return [...(v as string[])];
    return fail(field, `must be a list of module names, a regex string or null, got ${preview(v)}`);
  };

  const targetModules = strListOrRegex("target_modules");
  const excludeModules = strListOrRegex("exclude_modules");

  let init = get("init_lora_weights") ?? true;
  if (typeof init === "string" && init.toLowerCase() === "gaussian") init = "gaussian";
  if (!(typeof init === "boolean" || init === "gaussian" || init === "pissa" || isPissaNiter(init))) {
    fail(
      "init_lora_weights",
      `${preview(init)} is not supported (supported: true, false, "gaussian", "pissa", "pissa_niter_N")`,
    );
  }

  const ltt = get("layers_to_transform") ?? null;
  if (
    ltt !== null &&
    !(isNonNegInt(ltt) || (Array.isArray(ltt) && (ltt as unknown[]).every((x) => isNonNegInt(x))))
  ) {
    fail(
      "layers_to_transform",
      `must be a layer index, a list of layer indices or null, got ${preview(ltt)}`,
    );
  }
  const lp = get("layers_pattern") ?? null;
  if (
    lp !== null &&
    !(typeof lp === "string" || (Array.isArray(lp) && lp.every((x) => typeof x === "string")))
  ) {
    fail("layers_pattern", `must be a string, a list of strings or null, got ${preview(lp)}`);
  }
  // PEFT's own rules (LoraConfig.__post_init__).
  if (typeof targetModules === "string" && ltt !== null) {
    fail("layers_to_transform", "cannot be used when target_modules is a string (a regex or all-linear)");
  }
  if (typeof targetModules === "string" && lp !== null) {
    fail("layers_pattern", "cannot be used when target_modules is a string (a regex or all-linear)");
  }
  if (lp !== null && (lp as string | string[]).length > 0 && ltt === null) {
    fail("layers_pattern", "needs layers_to_transform as well");
  }

  const pattern = (field: string, integer: boolean): Record<string, number> => {
    const v = get(field) ?? {};
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      return fail(field, `must be an object mapping module-name patterns to numbers, got ${preview(v)}`);
    }
    const out: Record<string, number> = {};
    for (const [k, n] of Object.entries(v)) {
      checkRegex(k, (p) => fail(`${field}[${JSON.stringify(k)}]`, p));
      if (typeof n !== "number" || !Number.isFinite(n) || (integer && (!Number.isSafeInteger(n) || n <= 0))) {
        fail(
          `${field}[${JSON.stringify(k)}]`,
          `must be ${integer ? "a positive integer" : "a number"}, got ${preview(n)}`,
        );
      }
      Object.defineProperty(out, k, { value: n, enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  const rankPattern = pattern("rank_pattern", true);
  const alphaPattern = pattern("alpha_pattern", false);

  const mts = get("modules_to_save") ?? null;
  if (mts !== null && !(Array.isArray(mts) && mts.every((x) => typeof x === "string"))) {
    fail("modules_to_save", `must be a list of module names or null, got ${preview(mts)}`);
  }
  if (mts !== null && (mts as string[]).length > 0) {
    fail("modules_to_save", `fully trained extra modules are not supported (got ${preview(mts)})`);
  }

  return {
    peft_type: "LORA",
    task_type: strOrNull("task_type"),
    base_model_name_or_path: strOrNull("base_model_name_or_path"),
    r: r as number,
    lora_alpha: alpha as number,
    lora_dropout: dropout as number,
    target_modules: targetModules,
    exclude_modules: excludeModules,
    bias: bias as LoraBias,
    fan_in_fan_out: bool("fan_in_fan_out", false),
    use_rslora: bool("use_rslora", false),
    init_lora_weights: init as InitLoraWeights,
    layers_to_transform: ltt === null ? null : Array.isArray(ltt) ? [...(ltt as number[])] : (ltt as number),
    layers_pattern: lp === null ? null : Array.isArray(lp) ? [...(lp as string[])] : (lp as string),
    rank_pattern: rankPattern,
    alpha_pattern: alphaPattern,
    modules_to_save: mts === null ? null : [],
    inference_mode: bool("inference_mode", false),
    use_dora: false,
    raw: { ...o },
  };
}

/**
 * The JSON object to write as adapter_config.json: the fields as read (order and unknown fields
 * kept) with the known fields replaced by the config's current values. A config built in code gets
 * PEFT's layout: keys sorted, as PEFT's json.dumps(sort_keys=True) writes them.
 */
export function loraConfigToJson(cfg: LoraConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const set = (k: string, v: unknown): void => {
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  };
  const fromFile = Object.keys(cfg.raw).length > 0;
  for (const [k, v] of Object.entries(cfg.raw)) set(k, v);
  for (const k of KNOWN_FIELDS) {
    const v = cfg[k];
    // A field the file left out stays out while it holds the default, so a round trip is exact.
    if (fromFile && !Object.hasOwn(cfg.raw, k) && JSON.stringify(v) === JSON.stringify(PEFT_DEFAULTS[k]))
      continue;
    set(k, Array.isArray(v) ? [...v] : typeof v === "object" && v !== null ? { ...v } : v);
  }
  if (fromFile) return out;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(out).sort()) {
    Object.defineProperty(sorted, k, { value: out[k], enumerable: true, writable: true, configurable: true });
  }
  return sorted;
}

/**
 * PEFT's get_pattern_key (peft/utils/other.py): the first pattern key `k` (in object order) for which
 * `(.*\.)?(k)$` matches the module path from its start, i.e. `k` is a regex matching a dot-delimited
 * tail of the path.
 */
export function patternKeyFor(patternKeys: readonly string[], modulePath: string): string | undefined {
  for (const k of patternKeys) {
    if (new RegExp(`^(?:.*\\.)?(?:${k})$`).test(modulePath)) return k;
  }
  return undefined;
}

/** The rank of the adapter on `modulePath`: rank_pattern's match, else r. */
export function rankFor(cfg: LoraConfig, modulePath: string): number {
  const k = patternKeyFor(Object.keys(cfg.rank_pattern), modulePath);
  return k === undefined ? cfg.r : cfg.rank_pattern[k]!;
}

/** lora_alpha for `modulePath`: alpha_pattern's match, else lora_alpha. */
export function alphaFor(cfg: LoraConfig, modulePath: string): number {
  const k = patternKeyFor(Object.keys(cfg.alpha_pattern), modulePath);
  return k === undefined ? cfg.lora_alpha : cfg.alpha_pattern[k]!;
}

/** s = alpha / r, or alpha / sqrt(r) with rsLoRA, with the per-module overrides applied. */
export function scaling(cfg: LoraConfig, modulePath: string): number {
  const r = rankFor(cfg, modulePath);
  const alpha = alphaFor(cfg, modulePath);
  return cfg.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * The CLI's `--lora r=8,alpha=16,target=q_proj,v_proj,dropout=0.05,rslora=true,init=gaussian,
 * bias=none,layers=0,1` -> a LoraConfig. An item without "=" continues the previous key's list
 * (only target and layers take lists). Keys not given take PEFT's defaults (r 8, lora_alpha 8),
 * after `base`.
 */
export function parseLoraSpec(
  spec: string,
  base: Partial<Omit<LoraConfig, "raw" | "peft_type">> = {},
): LoraConfig {
  const fail = (problem: string): never => {
    throw new LoraTsError(`--lora ${JSON.stringify(spec)}: ${problem}`);
  };
  const values = new Map<string, string[]>();
  let last: string | undefined;
  const listKeys = new Set(["target", "layers"]);
  const keys = new Set(["r", "alpha", "dropout", "target", "rslora", "init", "bias", "layers"]);
  for (const raw of spec.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const eq = item.indexOf("=");
    if (eq < 0) {
      if (last === undefined) fail(`${JSON.stringify(item)} has no key (write key=value)`);
      if (!listKeys.has(last!)) fail(`${JSON.stringify(item)}: ${last} takes one value, not a list`);
      values.get(last!)!.push(item);
      continue;
    }
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    if (!keys.has(key)) fail(`unknown key ${JSON.stringify(key)} (keys: ${[...keys].join(", ")})`);
    if (values.has(key)) fail(`${key} is given twice`);
    if (value === "") fail(`${key} has an empty value`);
    values.set(key, [value]);
    last = key;
  }
  const one = (k: string): string | undefined => values.get(k)?.[0];
  const num = (k: string): number | undefined => {
    const v = one(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) fail(`${k}=${v} is not a number`);
    return n;
  };
  const fields: Record<string, unknown> = { ...base };
  if (values.has("r")) fields["r"] = num("r");
  if (values.has("alpha")) fields["lora_alpha"] = num("alpha");
  if (values.has("dropout")) fields["lora_dropout"] = num("dropout");
  if (values.has("target")) {
    const t = values.get("target")!;
    fields["target_modules"] = t.length === 1 && t[0] === ALL_LINEAR ? ALL_LINEAR : t;
  }
  if (values.has("rslora")) {
    const v = one("rslora");
    if (v !== "true" && v !== "false") fail(`rslora=${v}: write true or false`);
    fields["use_rslora"] = v === "true";
  }
  if (values.has("init")) {
    const v = one("init")!;
    fields["init_lora_weights"] = v === "true" ? true : v === "false" ? false : v;
  }
  if (values.has("bias")) fields["bias"] = one("bias");
  if (values.has("layers")) {
    fields["layers_to_transform"] = values.get("layers")!.map((s) => {
      const n = Number(s);
      if (!Number.isSafeInteger(n) || n < 0) fail(`layers: ${JSON.stringify(s)} is not a layer index`);
      return n;
    });
  }
  try {
    return makeLoraConfig(fields as Partial<LoraConfig>);
  } catch (e) {
    if (e instanceof LoraTsError) fail(e.message.replace(/^LoRA config field /, ""));
    throw e;
  }
}

function isPissaNiter(v: unknown): v is `pissa_niter_${number}` {
  return typeof v === "string" && /^pissa_niter_[0-9]+$/.test(v);
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function checkRegex(pattern: string, fail: (problem: string) => never): void {
  try {
    new RegExp(pattern);
  } catch (e) {
    fail(`${JSON.stringify(pattern)} is not a valid regular expression (${(e as Error).message})`);
  }
}
