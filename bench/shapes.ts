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

/** Qwen2.5-0.5B's shape, as the peer builds it (../shared/peers/torch_lora_bench.py, no q/k/v biases). */
export const QWEN25_05B = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  bos_token_id: 151643,
  eos_token_id: 151643,
};

/** Llama-3.2-1B's shape (tied embeddings; the peer leaves out its RoPE scaling, and so does this). */
export const LLAMA32_1B = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 128256,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000,
  tie_word_embeddings: true,
  hidden_act: "silu",
  bos_token_id: 128000,
  eos_token_id: 128001,
};
