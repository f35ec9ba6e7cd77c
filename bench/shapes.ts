/** Model shapes the benchmarks use (configs as in the Hugging Face hub's config.json files). */
export const GPT2_SMALL = {
  architectures: ["GPT2LMHeadModel"],
  model_type: "gpt2",
  vocab_size: 50257,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  n_positions: 1024,
  activation_function: "gelu_new",
  layer_norm_epsilon: 1e-5,
  bos_token_id: 50256,
  eos_token_id: 50256,
};

export const SMOLLM_135M = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  bos_token_id: 1,
  eos_token_id: 2,
};
