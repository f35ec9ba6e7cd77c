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
import { z } from "zod";
import { kindOf, preview } from "../util/describe.js";
import { LoraTsError } from "../util/errors.js";
import { loraScaling } from "./layer.js";

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
  /** DoRA (dora.ts): a trained magnitude per output beside A and B. */
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

/** The value PEFT assumes for each known field when a file leaves it out (or writes null). */
const PEFT_DEFAULTS = {
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
} as const satisfies Record<Exclude<keyof LoraConfig, "raw">, unknown>;

/** The fields of LoraConfig this module knows (everything else is passed through). */
const KNOWN_FIELDS = Object.keys(PEFT_DEFAULTS) as (keyof typeof PEFT_DEFAULTS)[];

/**
 * PEFT fields that switch on features this project does not implement: each is refused when set to
 * anything but its "off" value. (Fields like eva_config / corda_config / loftq_config only matter
 * with the matching init_lora_weights, which is refused itself, so they are passed through.)
 */
const UNSUPPORTED_WHEN_SET: Record<string, string> = {
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

/** Every issue of the schema it is given says `problem`, followed by the value found. */
const says = (problem: string) => ({
  error: (iss: { input?: unknown }) => `${problem}, got ${preview(iss.input)}`,
});
/** A known field: absent or null takes PEFT's default, then `schema` checks it. */
const field = <T extends z.ZodType>(k: keyof typeof PEFT_DEFAULTS, schema: T) =>
  z.preprocess((v) => v ?? structuredClone(PEFT_DEFAULTS[k]), schema);
/** The problem with `p` as a JavaScript regular expression, or undefined. */
function regexProblem(p: string): string | undefined {
  try {
    new RegExp(p);
  } catch (e) {
    // V8's message repeats the pattern raw: its line breaks go, so the error stays one line.
    return `${JSON.stringify(p)} is not a valid regular expression (${(e as Error).message.replace(/[\r\n]+/g, " ")})`;
  }
  if (repeatsAmbiguousGroup(p)) {
    return (
      `${JSON.stringify(p)} repeats a group that itself repeats or alternates, which can take exponential ` +
      "time to match a module path (write it without nesting, e.g. .*\\.(q_proj|v_proj))"
    );
  }
  return undefined;
}

/**
 * Whether `p` repeats (*, +, {…}) a group holding a repetition or an alternative: (a+)+, (.*)*x,
 * (\\w|\\.)+. Those backtrack exponentially on a path they do not match, and the pattern comes from
 * a file: `(.*)*x` against a 31-character module path ran for minutes. A heuristic (an ambiguous
 * pattern without nesting can still be slow), but it catches the classic forms; module-name regexes
 * need neither.
 */
function repeatsAmbiguousGroup(p: string): boolean {
  const open: boolean[] = []; // per open group: holds a repetition or an alternative
  const mark = () => {
    if (open.length > 0) open[open.length - 1] = true;
  };
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\") i++;
    else if (c === "[") {
      // A class is one character: skip to its end.
      for (i++; i < p.length && p[i] !== "]"; i++) if (p[i] === "\\") i++;
    } else if (c === "(") open.push(false);
    else if (c === ")") {
      const ambiguous = open.pop() ?? false;
      const repeated = p[i + 1] === "*" || p[i + 1] === "+" || p[i + 1] === "{";
      if (ambiguous && repeated) return true;
      if (ambiguous || repeated) mark();
    } else if (c === "*" || c === "+" || c === "{" || c === "|") mark();
  }
  return false;
}
const regex = z.string().superRefine((p, ctx) => {
  const message = regexProblem(p);
  if (message) ctx.addIssue({ code: "custom", message });
});
const strList = z.array(z.string());
/** `schema` or null (also when absent); anything else is one issue saying `problem` about the whole value. */
const orNull = <T extends z.ZodType>(schema: T, problem: string) =>
  z
    .union([z.null(), schema], says(problem))
    .optional()
    .transform((v) => v ?? null);
const layerIndices = "must be a layer index, a list of layer indices or null";
const layerIndex = z.number(says(layerIndices)).int().nonnegative();
const initKinds = {
  error: (i: { input?: unknown }) =>
    `${preview(i.input)} is not supported (supported: true, false, "gaussian", "pissa", "pissa_niter_N")`,
};
/** rank_pattern / alpha_pattern: module-name regex -> number. */
const pattern = (value: z.ZodNumber) =>
  z
    .record(z.string(), value, says("must be an object mapping module-name patterns to numbers"))
    .superRefine((rec, ctx) => {
      for (const k of Object.keys(rec)) {
        const message = regexProblem(k);
        if (message) ctx.addIssue({ code: "custom", path: [k], message });
      }
    });

/** adapter_config.json as PEFT's LoraConfig (peft/tuners/lora/config.py) checks it, less what is refused here. */
const LoraConfigSchema = z
  .object({
    peft_type: field(
      "peft_type",
      z.literal("LORA", { error: (i) => `${preview(i.input)} is not supported (only "LORA")` }),
    ),
    ...Object.fromEntries(
      Object.entries(UNSUPPORTED_WHEN_SET).map(([k, msg]) => [
        k,
        z
          .unknown()
          .refine(isOff, { error: (i) => `${msg} (got ${preview(i.input)})` })
          .optional(),
      ]),
    ),
    r: field("r", z.number(says("must be a positive integer")).int().positive()),
    lora_alpha: field("lora_alpha", z.number(says("must be a number"))),
    lora_dropout: field("lora_dropout", z.number(says("must be a number in [0, 1)")).min(0).lt(1)),
    bias: field("bias", z.enum(["none", "all", "lora_only"], says('must be "none", "all" or "lora_only"'))),
    fan_in_fan_out: field("fan_in_fan_out", z.boolean(says("must be true or false"))),
    use_rslora: field("use_rslora", z.boolean(says("must be true or false"))),
    use_dora: field("use_dora", z.boolean(says("must be true or false"))),
    inference_mode: field("inference_mode", z.boolean(says("must be true or false"))),
    task_type: orNull(z.string(), "must be a string or null"),
    base_model_name_or_path: orNull(z.string(), "must be a string or null"),
    target_modules: orNull(
      z.union([regex, strList]),
      "must be a list of module names, a regex string or null",
    ),
    exclude_modules: orNull(
      z.union([regex, strList]),
      "must be a list of module names, a regex string or null",
    ),
    init_lora_weights: field(
      "init_lora_weights",
      z.preprocess(
        (v) => (typeof v === "string" && v.toLowerCase() === "gaussian" ? "gaussian" : v),
        z.union(
          [z.boolean(), z.enum(["gaussian", "pissa"]), z.string().regex(/^pissa_niter_[0-9]+$/, initKinds)],
          initKinds,
        ),
      ),
    ),
    layers_to_transform: orNull(z.union([layerIndex, z.array(layerIndex)]), layerIndices),
    // Regexes too: targets.ts looks for `.<pattern>.<index>.` with them.
    layers_pattern: orNull(
      z.union([regex, z.array(regex)]),
      "must be a regex string, a list of regex strings or null",
    ),
    rank_pattern: field(
      "rank_pattern",
      pattern(z.number(says("must be a positive integer")).int().positive()),
    ),
    alpha_pattern: field("alpha_pattern", pattern(z.number(says("must be a number")))),
    modules_to_save: orNull(strList, "must be a list of module names or null").refine((v) => !v?.length, {
      error: (i) => `fully trained extra modules are not supported (got ${preview(i.input)})`,
    }),
  })
  .superRefine((c, ctx) => {
    // PEFT's own rules (LoraConfig.__post_init__).
    const problem = (path: string, message: string) =>
      ctx.addIssue({ code: "custom", path: [path], message });
    const regexTargets = typeof c.target_modules === "string";
    const ltt = c.layers_to_transform ?? null;
    const lp = c.layers_pattern ?? null;
    const why = "cannot be used when target_modules is a string (a regex or all-linear)";
    if (regexTargets && ltt !== null) problem("layers_to_transform", why);
    else if (regexTargets && lp !== null) problem("layers_pattern", why);
    else if (lp !== null && lp.length > 0 && ltt === null)
      problem("layers_pattern", "needs layers_to_transform as well");
  });

/** A copy of a parsed object keeping keys like "__proto__" as plain own keys. */
function ownCopy<T>(o: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [k, v] of Object.entries(o))
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

/**
 * Validates an adapter_config.json object (or a plain object built in code) and returns a
 * LoraConfig. Missing fields take PEFT's defaults. Every error is one line naming the file (when
 * given) and the field.
 */
export function parseLoraConfig(json: unknown, file?: string): LoraConfig {
  const where = file ? `${file}: ` : "";
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new LoraTsError(`${where}LoRA config must be a JSON object, got ${kindOf(json)}`);
  }
  const raw = json as Record<string, unknown>;
  const parsed = LoraConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // rank_pattern["q_proj"]; an index into a list is left out (the message shows the value).
    const keys = issue.path.filter((k) => typeof k === "string");
    const name = `${keys[0]}${keys
      .slice(1)
      .map((k) => `[${JSON.stringify(k)}]`)
      .join("")}`;
    throw new LoraTsError(`${where}LoRA config field ${name}: ${issue.message}`);
  }
  const c = parsed.data as Record<string, unknown>;
  const known = Object.fromEntries(KNOWN_FIELDS.map((k) => [k, c[k]])) as Omit<LoraConfig, "raw">;
  return {
    ...known,
    // Pattern keys are copied from the input itself, so keys like "__proto__" stay plain keys.
    rank_pattern: ownCopy((raw["rank_pattern"] ?? {}) as Record<string, number>),
    alpha_pattern: ownCopy((raw["alpha_pattern"] ?? {}) as Record<string, number>),
    raw: { ...raw },
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

/** The module's s (layer.ts `loraScaling`), with rank_pattern / alpha_pattern applied. */
export function scaling(cfg: LoraConfig, modulePath: string): number {
  return loraScaling(alphaFor(cfg, modulePath), rankFor(cfg, modulePath), cfg.use_rslora);
}

/**
 * The CLI's `--lora r=8,alpha=16,target=q_proj,v_proj,dropout=0.05,rslora=true,dora=true,
 * init=gaussian,bias=none,layers=0,1` -> a LoraConfig. An item without "=" continues the previous key's list
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
  const keys = new Set(["r", "alpha", "dropout", "target", "rslora", "dora", "init", "bias", "layers"]);
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
    if (!Number.isFinite(n)) fail(`${k}=${JSON.stringify(v)} is not a number`);
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
    if (v !== "true" && v !== "false") fail(`rslora=${JSON.stringify(v)}: write true or false`);
    fields["use_rslora"] = v === "true";
  }
  if (values.has("dora")) {
    const v = one("dora");
    if (v !== "true" && v !== "false") fail(`dora=${JSON.stringify(v)}: write true or false`);
    fields["use_dora"] = v === "true";
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
