/**
 * Attention view: every head's pattern (blocks.{l}.attn.hook_pattern, softmax over keys) of one
 * prompt, as the plain-data contract of @sp/report's attentionSpec / attentionReportHtml.
 */
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { SpError, assertInt } from '../errors.js';
import type { HookName } from '../hooks/index.js';
import type { GPT2 } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';

export interface AttentionOptions {
  /** Blocks to read (default all), in the order given. */
  layers?: number[];
  /** Prepend `<|endoftext|>` (see ForwardOptions.prependBos); it then is token 0 of the result. */
  prependBos?: boolean;
  /** FF neuron interventions (as in model.forward): patterns of later layers see their effect. */
  interventions?: NeuronIntervention[];
}

/** `sp attention --json`: `heads[h][q][k]` = the weight query position q gives key position k (0 for k > q). */
export interface AttentionResult {
  model: string;
  ids: number[];
  tokens: string[];
  layers: Array<{ layer: number; heads: number[][][] }>;
}

/** Every head's attention pattern of one prompt (text or ids), one forward pass. */
export function attentionPatterns(model: GPT2, input: string | number[], opts: AttentionOptions = {}): AttentionResult {
  return readSteps(attentionSteps(model, input, opts));
}

/** attentionPatterns awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function attentionPatternsAsync(model: GPT2, input: string | number[], opts: AttentionOptions = {}): Promise<AttentionResult> {
  return readStepsAsync(attentionSteps(model, input, opts));
}

function* attentionSteps(model: GPT2, input: string | number[], opts: AttentionOptions): ReadSteps<AttentionResult> {
  if (Array.isArray(input) && input.some((x) => typeof x !== 'number')) {
    throw new SpError('BAD_INPUT', 'attentionPatterns takes one prompt (text or token ids), not a batch');
  }
  const { nLayer } = model.config;
  const layers = opts.layers ?? Array.from({ length: nLayer }, (_, l) => l);
  if (!Array.isArray(layers) || layers.length === 0) throw new SpError('BAD_INPUT', 'layers must be a non-empty list of block indices');
  for (const l of layers) assertInt('layer', l, 0, nLayer);
  const ids = model.toTokens(input, { prependBos: opts.prependBos }).ids[0];
  const names = [...new Set(layers)].map((l) => `blocks.${l}.attn.hook_pattern` as HookName);
  // logits 'last': the patterns need no unembedding beyond one position.
  const { logits, cache } = model.runWithCache(ids, { names, logits: 'last', interventions: opts.interventions });
  try {
    logits.dispose();
    const out: AttentionResult['layers'] = [];
    for (const layer of layers) {
      const p = cache.get(`blocks.${layer}.attn.hook_pattern`); // [1, h, s, s]
      const [, h, s] = p.shape;
      const v = yield p;
      out.push({ layer, heads: Array.from({ length: h }, (_, i) => Array.from({ length: s }, (_, q) => Array.from(v.subarray((i * s + q) * s, (i * s + q + 1) * s)))) });
    }
    return { model: model.name, ids, tokens: ids.map((id) => model.tokenString(id)), layers: out };
  } finally {
    cache.dispose();
  }
}
