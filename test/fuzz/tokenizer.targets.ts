/**
 * Fuzz targets for tokenizer folders and chat templates (data/tokenizer.ts over
 * @huggingface/tokenizers, data/chat-template.ts over @huggingface/jinja): tokenizer.json and
 * tokenizer_config.json of small SentencePiece and byte-level BPE vocabularies, structurally or
 * byte-mutated, loaded with Tokenizer.fromDir and used the way training uses them (encode with and
 * without BOS, decode, the chat template's loss mask); and chat templates byte-mutated and rendered.
 */
import { join } from "node:path";
import fc from "fast-check";
import { ChatTemplate, DEFAULT_CHAT_TEMPLATE, tokenizeChat } from "../../src/data/chat-template.js";
import type { ChatMessage } from "../../src/data/formats.js";
import { Tokenizer } from "../../src/data/tokenizer.js";
import { readTokenizer } from "../../src/data/tokenizer-files.js";
import { gpt2TokenizerJson, spmTokenizerJson, tokenizerConfigJson } from "../../src/io/tokenizer-json.js";
import { toyTokenizer } from "../data/toy-tokenizer.js";
import { tempDir } from "../models/fixtures.js";
import { allSteps, type FuzzTarget } from "./harness.js";
import { InputFile } from "./input-file.js";
import { jsonDocuments, mutatedBytes } from "./mutate.js";

const SPM_PIECES = [
  "<unk>",
  "<s>",
  "</s>",
  "▁",
  "a",
  "b",
  "c",
  "▁a",
  "▁b",
  "ab",
  "▁ab",
  "abc",
  "<0x0A>",
  "<0x20>",
];
const spm = spmTokenizerJson({
  tokens: SPM_PIECES,
  scores: SPM_PIECES.map((_, i) => -i),
  bos: 1,
  eos: 2,
  unk: 0,
});
const GPT2_TOKENS = ["<|endoftext|>", "a", "b", "c", "Ġ", "Ċ", "ab", "Ġa", "Ġab"];
const gpt2 = gpt2TokenizerJson({ tokens: GPT2_TOKENS, merges: ["a b", "Ġ a", "Ġa b"] });
const toy = toyTokenizer({
  chatTemplate: "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}</s>{% endfor %}",
});

const TEMPLATES = [
  DEFAULT_CHAT_TEMPLATE,
  "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]" +
    "{% elif m['role'] == 'assistant' %}{{ m['content'] }}{{ eos_token }}{% else %}<<SYS>>{{ m['content'] }}<</SYS>>" +
    "{% endif %}{% endfor %}",
  "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content | trim }}</s>\n{% endfor %}" +
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
  "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}" +
    "{% for m in messages %}{{ (m.role ~ ': ' ~ m.content) | upper }}{% if not loop.last %}\n{% endif %}{% endfor %}",
  // range() with numbers to mutate: 10**N and nested loops must stay bounded.
  "{% for i in range(messages | length) %}{% for j in range(2, 9, 3) %}{{ i * j }}{% endfor %}" +
    "{{ messages[i]['content'][:10 ** 1] }}{% endfor %}",
];

const TOKENIZER_SEEDS = [
  {
    json: spm,
    config: tokenizerConfigJson({
      bosToken: "<s>",
      eosToken: "</s>",
      unkToken: "<unk>",
      addBosToken: true,
      chatTemplate: TEMPLATES[1]!,
    }),
  },
  { json: gpt2, config: tokenizerConfigJson({ bosToken: "<|endoftext|>", eosToken: "<|endoftext|>" }) },
  { json: toy.tokenizerJson, config: toy.tokenizerConfig },
];

const MESSAGES: ChatMessage[][] = [
  [
    { role: "system", content: "Be brief" },
    { role: "user", content: "Hi\nthere" },
    { role: "assistant", content: "ab c" },
  ],
  [{ role: "user", content: "" }],
  [
    { role: "assistant", content: "a" },
    { role: "assistant", content: "" },
  ],
];

const dir = tempDir("lora-ts-fuzz-tokenizer-");
const tokenizerFile = new InputFile(join(dir, "tokenizer.json"));
const configFile = new InputFile(join(dir, "tokenizer_config.json"));

/** What training does with a tokenizer: encode (three BOS modes), decode, the chat loss mask. */
function useTokenizer(tok: Tokenizer, text: string): void {
  allSteps(
    () => {
      for (const addBos of [undefined, false, true]) tok.decode(tok.encode(text, { addBos }));
    },
    () => {
      const template = ChatTemplate.forTokenizer(tok);
      for (const m of MESSAGES) tokenizeChat(tok, template, m);
    },
  );
}

interface TokenizerInput {
  seed: number;
  tokenizer?: string;
  config?: string;
  text: string;
}

const text = fc.oneof(
  fc.constantFrom("ab a\nc", "", " ", "abc abc", "<s>a</s>", "\u0000\uFFFF🦙"),
  fc.string({ maxLength: 12 }),
);

export const tokenizerFolder: FuzzTarget<TokenizerInput> = {
  name: "tokenizer: tokenizer.json + tokenizer_config.json",
  covers:
    "Tokenizer.fromDir, encode (BOS default/off/on), decode, ChatTemplate.forTokenizer + tokenizeChat; SentencePiece and byte-level BPE files mutated",
  arbitrary: fc.oneof(
    ...TOKENIZER_SEEDS.map((s, i) =>
      fc.oneof(
        {
          weight: 3,
          arbitrary: fc.record({ seed: fc.constant(i), tokenizer: jsonDocuments([s.json]), text }),
        },
        {
          weight: 2,
          arbitrary: fc.record({ seed: fc.constant(i), config: jsonDocuments([s.config]), text }),
        },
      ),
    ),
  ),
  run: ({ seed, tokenizer, config, text }) => {
    const s = TOKENIZER_SEEDS[seed]!;
    tokenizerFile.write(tokenizer ?? JSON.stringify(s.json));
    configFile.write(config ?? JSON.stringify(s.config));
    useTokenizer(readTokenizer(dir), text);
  },
  size: (i) => (i.tokenizer?.length ?? 0) + (i.config?.length ?? 0) + i.text.length,
};

const SPM_TOKENIZER = Tokenizer.fromJSON(spm, TOKENIZER_SEEDS[0]!.config);
const templateBytes = TEMPLATES.map((t) => new TextEncoder().encode(t));

export const chatTemplate: FuzzTarget<{ source: string; messages: number }> = {
  name: "tokenizer: chat templates",
  covers:
    "new ChatTemplate + render (with and without the generation prompt) + tokenizeChat's loss mask; templates byte-mutated",
  arbitrary: fc.record({
    source: fc.oneof(
      { weight: 6, arbitrary: mutatedBytes(templateBytes).map((b) => Buffer.from(b).toString("utf8")) },
      { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
    ),
    messages: fc.nat(MESSAGES.length - 1),
  }),
  run: ({ source, messages }) => {
    const t = new ChatTemplate(source, { bos_token: "<s>", eos_token: "</s>" });
    const m = MESSAGES[messages]!;
    allSteps(
      () => t.render(m, true),
      () => tokenizeChat(SPM_TOKENIZER, t, m),
    );
  },
  size: (i) => i.source.length,
  explicit: [
    "{% for i in range(10 ** 8) %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set r = range %}{{ r(0, 10 ** 9, 1) | length }}",
  ].map((source) => ({ name: source, input: { source, messages: 0 } })),
};

export const targets = [tokenizerFolder, chatTemplate];
