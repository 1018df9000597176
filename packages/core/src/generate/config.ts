/**
 * Generation defaults, declared once (HF `GenerationConfig` style: the same names in camelCase and
 * the same default values). `generate`, the speaking probe (as overrides) and the CLI help texts
 * read them from here.
 */

/** Default GenerateOptions.memoryBudget (512 MiB). */
export const GENERATION_MEMORY_BUDGET = 2 ** 29;

export interface GenerationConfig {
  /** HF max_new_tokens, default 20. */
  maxNewTokens: number;
  /** Sample (true) or greedy (false, HF's default). */
  doSample: boolean;
  /** Default 1. Must be > 0 when sampling. */
  temperature: number;
  /** Default 50 (HF's default), 0 disables. */
  topK: number;
  /** Default 1 (disabled). */
  topP: number;
  /** HF rule, default 1 (off). */
  repetitionPenalty: number;
  /** EOS is suppressed until the whole sequence (prompt + new, without padding) has this many tokens. Default 0. */
  minLength: number;
  /** EOS is suppressed until this many new tokens. Default 0. */
  minNewTokens: number;
  /** Samples per prompt (default 1). */
  numReturnSequences: number;
  /**
   * Drop special tokens (`<|endoftext|>`) from the decoded texts and token events, as HF's
   * `tokenizer.decode(..., skip_special_tokens=True)`. Default false, HF's default. Ids are unchanged.
   */
  skipSpecialTokens: boolean;
  /**
   * Bytes the batch's KV cache and logits may take (generationMemoryBytes; default 512 MiB, an sp
   * setting HF does not have).
   */
  memoryBudget: number;
}

/** HF `GenerationConfig()` defaults for the settings sp supports. */
export const GENERATION_DEFAULTS: Readonly<GenerationConfig> = Object.freeze({
  maxNewTokens: 20,
  doSample: false,
  temperature: 1,
  topK: 50,
  topP: 1,
  repetitionPenalty: 1,
  minLength: 0,
  minNewTokens: 0,
  numReturnSequences: 1,
  skipSpecialTokens: false,
  memoryBudget: GENERATION_MEMORY_BUDGET,
});

/** Why a row stopped: its EOS id, a stop string in its new text, or maxNewTokens (OpenAI's / HF's finish_reason). */
export type FinishReason = 'eos' | 'stop_string' | 'length';
