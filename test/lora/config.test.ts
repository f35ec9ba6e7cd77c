import assert from "node:assert/strict";
import { test } from "node:test";
import {
  alphaFor,
  defaultTargets,
  loraConfigToJson,
  makeLoraConfig,
  parseLoraConfig,
  parseLoraSpec,
  rankFor,
  scaling,
} from "../../src/lora/config.js";
import { LoraTsError } from "../../src/util/errors.js";

/** A config as PEFT 0.13 writes it, plus a field from the future. */
const PEFT_JSON = {
  alpha_pattern: {},
  auto_mapping: null,
  base_model_name_or_path: "HuggingFaceTB/SmolLM-135M",
  bias: "none",
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 16,
  lora_dropout: 0.05,
  megatron_config: null,
  megatron_core: "megatron.core",
  modules_to_save: null,
  peft_type: "LORA",
  r: 8,
  rank_pattern: {},
  revision: null,
  target_modules: ["v_proj", "q_proj"],
  task_type: "CAUSAL_LM",
  use_dora: false,
  use_rslora: false,
  some_future_field: { nested: [1, 2, 3] },
};

test("parses a PEFT adapter_config.json and keeps unknown fields on write", () => {
  const cfg = parseLoraConfig(PEFT_JSON, "x/adapter_config.json");
  assert.equal(cfg.r, 8);
  assert.equal(cfg.lora_alpha, 16);
  assert.deepEqual(cfg.target_modules, ["v_proj", "q_proj"]);
  assert.equal(cfg.init_lora_weights, true);
  const out = loraConfigToJson(cfg);
  assert.deepEqual(out, PEFT_JSON);
  assert.deepEqual(Object.keys(out), Object.keys(PEFT_JSON), "key order kept");
  // Changing a known field changes only that field.
  const out2 = loraConfigToJson({ ...cfg, r: 16 });
  assert.equal(out2["r"], 16);
  assert.deepEqual(out2["some_future_field"], { nested: [1, 2, 3] });
});

test("missing fields take PEFT's defaults", () => {
  const cfg = parseLoraConfig({ target_modules: ["q_proj"] });
  assert.equal(cfg.r, 8);
  assert.equal(cfg.lora_alpha, 8);
  assert.equal(cfg.lora_dropout, 0);
  assert.equal(cfg.bias, "none");
  assert.equal(cfg.use_rslora, false);
  assert.equal(cfg.init_lora_weights, true);
  assert.equal(scaling(cfg, "model.layers.0.self_attn.q_proj"), 1);
});

test("validation errors are one line naming the field", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ r: 0 }, /field r: must be a positive integer, got 0/],
    [{ r: 2.5 }, /field r: must be a positive integer/],
    [{ r: "8" }, /field r: must be a positive integer, got "8"/],
    [{ lora_alpha: "16" }, /field lora_alpha: must be a number/],
    [{ lora_dropout: 1 }, /field lora_dropout: must be a number in \[0, 1\)/],
    [{ lora_dropout: -0.1 }, /field lora_dropout/],
    [{ bias: "some" }, /field bias: must be "none", "all" or "lora_only"/],
    [{ use_dora: "yes" }, /field use_dora: must be true or false/],
    [{ modules_to_save: ["score"] }, /field modules_to_save: fully trained extra modules are not supported/],
    [{ init_lora_weights: "olora" }, /field init_lora_weights: "olora" is not supported/],
    [{ init_lora_weights: "loftq" }, /field init_lora_weights: "loftq" is not supported/],
    [{ lora_bias: true }, /field lora_bias/],
    [{ layer_replication: [[0, 2]] }, /field layer_replication/],
    [{ peft_type: "ADALORA" }, /field peft_type: "ADALORA" is not supported/],
    [{ target_modules: "q_proj(" }, /field target_modules: "q_proj\(" is not a valid regular expression/],
    [
      { target_modules: ".*q_proj", layers_to_transform: [0] },
      /layers_to_transform: cannot be used when target_modules is a string/,
    ],
    [{ target_modules: "all-linear", layers_to_transform: [0] }, /layers_to_transform: cannot be used/],
    [{ target_modules: ["q_proj"], layers_pattern: "layers" }, /layers_pattern: needs layers_to_transform/],
    [{ rank_pattern: { q_proj: 0 } }, /rank_pattern\["q_proj"\]: must be a positive integer/],
    [{ layers_to_transform: [-1] }, /layers_to_transform: must be a layer index/],
  ];
  for (const [json, re] of bad) {
    assert.throws(
      () => parseLoraConfig(json, "a/adapter_config.json"),
      (e: Error) =>
        e instanceof LoraTsError &&
        re.test(e.message) &&
        !e.message.includes("\n") &&
        e.message.startsWith("a/adapter_config.json: "),
      JSON.stringify(json),
    );
  }
  // Supported init kinds.
  for (const init of [true, false, "gaussian", "pissa", "pissa_niter_4"]) {
    assert.equal(parseLoraConfig({ init_lora_weights: init }).init_lora_weights, init);
  }
});

test("defaultTargets per architecture", () => {
  assert.deepEqual(defaultTargets("llama"), ["q_proj", "v_proj"]);
  assert.deepEqual(defaultTargets("mistral"), ["q_proj", "v_proj"]);
  assert.deepEqual(defaultTargets("qwen2"), ["q_proj", "v_proj"]);
  assert.deepEqual(defaultTargets("gpt2"), ["c_attn"]);
  assert.throws(() => defaultTargets("t5"), /no default LoRA target_modules for model_type "t5"/);
});

test("scaling: alpha/r, rsLoRA alpha/sqrt(r), rank and alpha patterns as PEFT's get_pattern_key", () => {
  const cfg = makeLoraConfig({
    r: 8,
    lora_alpha: 16,
    target_modules: ["q_proj", "v_proj"],
    rank_pattern: { "layers.1.self_attn.q_proj": 4, v_proj: 16 },
    alpha_pattern: { "model\\.layers\\.\\d+\\.self_attn\\.v_proj": 8 },
  });
  assert.equal(scaling(cfg, "model.layers.0.self_attn.q_proj"), 2);
  assert.equal(rankFor(cfg, "model.layers.1.self_attn.q_proj"), 4);
  assert.equal(scaling(cfg, "model.layers.1.self_attn.q_proj"), 4);
  // "layers.1.self_attn.q_proj" must match a dot-delimited tail: not "model.layers.11.self_attn.q_proj".
  assert.equal(rankFor(cfg, "model.layers.11.self_attn.q_proj"), 8);
  assert.equal(rankFor(cfg, "model.layers.0.self_attn.v_proj"), 16);
  assert.equal(alphaFor(cfg, "model.layers.0.self_attn.v_proj"), 8);
  assert.equal(scaling(cfg, "model.layers.0.self_attn.v_proj"), 0.5);
  // A pattern key must match up to the end: "q_proj" does not match "q_proj_extra".
  const c2 = makeLoraConfig({ rank_pattern: { q_proj: 2 } });
  assert.equal(rankFor(c2, "a.q_proj_extra"), 8);
  assert.equal(rankFor(c2, "q_proj"), 2);
  const rs = makeLoraConfig({ r: 16, lora_alpha: 8, use_rslora: true });
  assert.equal(scaling(rs, "x.q_proj"), 2);
});

test("parseLoraSpec: CLI shorthand, a bare item continues the previous key's list", () => {
  const cfg = parseLoraSpec("r=8,alpha=16,target=q_proj,v_proj");
  assert.equal(cfg.r, 8);
  assert.equal(cfg.lora_alpha, 16);
  assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj"]);
  const c2 = parseLoraSpec("r=4,target=all-linear,rslora=true,init=gaussian,dropout=0.1,bias=lora_only");
  assert.equal(c2.target_modules, "all-linear");
  assert.equal(c2.use_rslora, true);
  assert.equal(c2.init_lora_weights, "gaussian");
  assert.equal(c2.lora_dropout, 0.1);
  assert.equal(c2.bias, "lora_only");
  const c3 = parseLoraSpec("target=q_proj,k_proj,layers=0,2,r=2,init=false");
  assert.deepEqual(c3.layers_to_transform, [0, 2]);
  assert.deepEqual(c3.target_modules, ["q_proj", "k_proj"]);
  assert.equal(c3.init_lora_weights, false);
  assert.throws(() => parseLoraSpec("q_proj,r=8"), /--lora "q_proj,r=8": "q_proj" has no key/);
  assert.throws(() => parseLoraSpec("r=8,16"), /r takes one value, not a list/);
  assert.throws(() => parseLoraSpec("rank=8"), /unknown key "rank"/);
  assert.throws(() => parseLoraSpec("r=0"), /--lora "r=0": r: must be a positive integer/);
  assert.throws(() => parseLoraSpec("r=8,r=4"), /r is given twice/);
});

test("fuzz regression: --lora values with a line break are quoted, the message stays on one line", () => {
  // Before: "r=a\nb is not a number" and "rslora=a\nb: write ..." put the value in raw.
  assert.throws(
    () => parseLoraSpec("r=a\nb"),
    (e: unknown) => e instanceof LoraTsError && e.message === '--lora "r=a\\nb": r="a\\nb" is not a number',
  );
  assert.throws(
    () => parseLoraSpec("rslora=a\rb"),
    (e: unknown) =>
      e instanceof LoraTsError && e.message === '--lora "rslora=a\\rb": rslora="a\\rb": write true or false',
  );
});

test("fuzz regression: layers_pattern must be a valid regex, and regex errors stay on one line", () => {
  // Before: any string passed, and targets.ts's `new RegExp` threw a SyntaxError when selecting.
  for (const lp of ["[", ["layers", "a)("]]) {
    assert.throws(
      () => parseLoraConfig({ target_modules: ["q_proj"], layers_to_transform: [0], layers_pattern: lp }),
      (e: unknown) =>
        e instanceof LoraTsError &&
        /^LoRA config field layers_pattern: .* is not a valid regular expression/.test(e.message),
    );
  }
  // Before: V8's message quoted the pattern raw, line break included.
  assert.throws(
    () => parseLoraConfig({ target_modules: "a\n(" }),
    (e: unknown) =>
      e instanceof LoraTsError && !/[\r\n]/.test(e.message) && e.message.includes('"a\\n(" is not a valid'),
  );
});

test("fuzz regression: a regex repeating an ambiguous group is refused before it can hang matching", () => {
  // Before: accepted, and selecting targets with (.*)*x ran for minutes on one 31-character path.
  for (const [field, value] of [
    ["target_modules", "(.*)*x"],
    ["exclude_modules", "(\\w|\\.)+q"],
    ["rank_pattern", { "(a+)+b": 4 }],
  ] as const) {
    assert.throws(
      () => parseLoraConfig({ target_modules: ["q_proj"], [field]: value }),
      (e: unknown) =>
        e instanceof LoraTsError &&
        /repeats a group that itself repeats or alternates, which can take exponential time/.test(e.message),
    );
  }
  // The usual forms stay accepted.
  for (const ok of [
    ".*\\.(q_proj|v_proj)",
    "model\\.layers\\.\\d+\\.self_attn\\.(q|k)_proj",
    "(.*\\.)?(q|v)_proj",
  ])
    assert.equal(parseLoraConfig({ target_modules: ok }).target_modules, ok);
});
