/**
 * Result types of the logit-lens analyses. Everything is plain data (numbers, strings, arrays), so a
 * result can be JSON.stringify'd as is, written by the CLI, or handed to @sp/report.
 */

/** Where on the residual stream a lens row reads: TransformerLens hook families. */
export type LensStream = 'resid_pre' | 'resid_mid' | 'resid_post';

/**
 * Which points of the residual stream become rows:
 * - `layers` (default): the nLayer+1 points between blocks: embeddings (blocks.0.hook_resid_pre),
 *   then each block's hook_resid_post (the last one is the model's output);
 * - `mid`: each block's hook_resid_mid (after attention, before the FF layer);
 * - `all`: both interleaved (2·nLayer+1 rows), so attention's and the FF layer's contributions
 *   separate (LM-Debugger's before/after-FF view).
 */
export type LensView = 'layers' | 'mid' | 'all';

/** One row of a lens: a point on the residual stream. */
export interface LensRowInfo {
  /** Depth in blocks: 0 = embeddings, ℓ = after ℓ blocks, i + 0.5 = block i after attention. */
  layer: number;
  /** The block whose hook this is. */
  block: number;
  stream: LensStream;
  /** TransformerLens hook name, e.g. `blocks.3.hook_resid_post`. */
  hook: string;
  /** Short label for charts: `embed`, `3`, `3+attn`. */
  label: string;
}

export interface TokenProb {
  id: number;
  /** Decoded text of the token, e.g. `' Paris'`. */
  token: string;
  prob: number;
}

/** The lens distribution at one (row, position). */
export interface LensCell {
  /** Top-k tokens of softmax(unembed(ln_f(x))), most probable first. */
  top: TokenProb[];
  /** Entropy of the lens distribution, nats. */
  entropy: number;
  /** KL(final ‖ lens) in nats: Σ p_final · (log p_final − log p_lens); 0 at the output row. */
  kl: number;
  /** Probability of the most likely token (= top[0].prob). */
  max_prob: number;
}

export interface LensLayer extends LensRowInfo {
  /** One cell per prompt position. */
  positions: LensCell[];
}

/** `logitLens` result for one prompt. */
export interface LensResult {
  /** Model name or directory. */
  model: string;
  view: LensView;
  /** Prompt token ids (no padding). */
  ids: number[];
  /** Decoded text of each prompt token. */
  tokens: string[];
  /** Rows in forward order (embeddings first, output last). */
  layers: LensLayer[];
}

/** `rankings` result for one sequence (Ecco's `rankings`). */
export interface RankingsResult {
  model: string;
  view: LensView;
  ids: number[];
  tokens: string[];
  /** Rows (points on the residual stream), forward order. */
  layers: LensRowInfo[];
  /** Index of the first generated token in `ids` (= ids.length when nothing was generated). */
  prompt_length: number;
  positions: RankedPosition[];
}

export interface RankedPosition {
  /** Position whose prediction is ranked (the target is the token after it). */
  pos: number;
  /** The token ranked: the next token of the sequence, or the model's own top-1 after the last position. */
  target: { id: number; token: string };
  /** true when the target is the model's own prediction (the last position), not a token of the sequence. */
  predicted: boolean;
  /** Rank of the target at each row: 1 = most probable. */
  ranks: number[];
  /** Probability of the target at each row. */
  probs: number[];
}

/** `rankingsWatch` result: several candidate tokens compared at one position. */
export interface WatchResult {
  model: string;
  view: LensView;
  ids: number[];
  tokens: string[];
  position: number;
  watch: Array<{ id: number; token: string }>;
  layers: Array<LensRowInfo & {
    /** ranks[w]: rank of watch token w (1 = most probable). */
    ranks: number[];
    /** probs[w]: probability of watch token w. */
    probs: number[];
  }>;
}

/** A FF neuron's contribution at one position (LM-Debugger's "significant values"). */
export interface NeuronContribution {
  layer: number;
  index: number;
  /** Activation (mlp.hook_post) at the position: the coefficient of value vector `index`. */
  coefficient: number;
  /** ‖v‖ of the value vector (row `index` of mlp.c_proj.weight). */
  value_norm: number;
  /** coefficient × ‖v‖: how much this neuron writes into the stream. */
  score: number;
  /** Top tokens of the value vector in embedding space, E·v (no layernorm, as in Geva et al. 2022). */
  top: Array<{ id: number; token: string; logit: number }>;
}

export interface NeuronsResult {
  model: string;
  ids: number[];
  tokens: string[];
  position: number;
  /** Sorted by |score|, largest first. */
  neurons: NeuronContribution[];
}
