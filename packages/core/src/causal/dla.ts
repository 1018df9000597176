/**
 * Direct logit attribution (TransformerLens' `cache.decompose_resid` / `stack_head_results` +
 * `apply_ln_to_stack` + `logit_attrs`): the final residual stream at one position is a sum of
 * parts, each written once and read by the unembedding through ln_final alone,
 *
 *   resid_final = embed + pos_embed + Σ_l (Σ_h result_{l,h} + b_O_l) + Σ_l mlp_out_l
 *
 * and ln_final is linear in each part once its scale (of the FULL stream, ln_final.hook_scale) is
 * frozen: LN(x) = Σ_c (c − mean c) / scale ⊙ w + b. So with u = W_U[:, token] (− W_U[:, vs]):
 *
 *   value(c) = Σ_i (c_i − mean c) · w_i u_i / scale      (every component)
 *   bias     = Σ_l value(b_O_l) + Σ_i b_i u_i             (all that does not depend on the input)
 *
 * and Σ values = logit(token) (− logit(vs)) exactly, up to float rounding. mlp_out keeps its own
 * bias (b_out, as TransformerLens' mlp_out); attention biases b_O belong to no head and go to
 * `bias`, as in get_full_resid_decomposition. GPT-2 has no unembedding bias.
 */
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { SpError, assertInt } from '../errors.js';
import type { HookName } from '../hooks/index.js';
import type { GPT2 } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';
import { resolvePosition } from '../lens/pass.js';

export interface DlaOptions {
  /** The token whose logit is attributed: a string that is exactly one token (`' is'`)… */
  token?: string;
  /** …or its id. */
  tokenId?: number;
  /** Attribute logit(token) − logit(vs) instead (a one-token string)… */
  vs?: string;
  /** …or by id. */
  vsId?: number;
  /** Position read (default -1: the last; negative counts from the end). */
  position?: number;
  /** Prepend `<|endoftext|>` (see ForwardOptions.prependBos); positions then count it. */
  prependBos?: boolean;
  /** FF neuron interventions (as in model.forward), applied before anything is read. */
  interventions?: NeuronIntervention[];
}

export interface DlaComponent {
  /** `embed`, `pos_embed`, `L{l}.H{h}` (one head), `L{l}.mlp`, `bias`. */
  name: string;
  value: number;
}

/** `sp dla --json`. */
export interface DlaResult {
  model: string;
  ids: number[];
  tokens: string[];
  position: number;
  token: string;
  token_id: number;
  vs?: string;
  vs_id?: number;
  /** In forward order: embed, pos_embed, then per layer its heads and its MLP, then bias. */
  components: DlaComponent[];
  /** Σ components (float64). */
  total: number;
  /** logit(token) (− logit(vs)) at `position` from the model's own forward pass (float32); equals total to ~1e-5. */
  logit: number;
  /** ln_final.hook_scale at `position`: sqrt(var + eps) of the full final residual stream. */
  scale: number;
}

/** Direct logit attribution of one prompt (text or ids) at one position, one forward pass. */
export function directLogitAttribution(model: GPT2, input: string | number[], opts: DlaOptions = {}): DlaResult {
  return readSteps(dlaSteps(model, input, opts));
}

/** directLogitAttribution awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function directLogitAttributionAsync(model: GPT2, input: string | number[], opts: DlaOptions = {}): Promise<DlaResult> {
  return readStepsAsync(dlaSteps(model, input, opts));
}

function* dlaSteps(model: GPT2, input: string | number[], opts: DlaOptions): ReadSteps<DlaResult> {
  if (Array.isArray(input) && input.some((x) => typeof x !== 'number')) {
    throw new SpError('BAD_INPUT', 'directLogitAttribution takes one prompt (text or token ids), not a batch');
  }
  const { nLayer: L, nHead: H, dModel: d, dVocab: V } = model.config;
  const tokenId = pickToken(model, 'token', opts.token, opts.tokenId, V, true)!;
  const vsId = pickToken(model, 'vs', opts.vs, opts.vsId, V, false);
  if (vsId === tokenId) throw new SpError('BAD_INPUT', `token and vs are the same token (${tokenId}): the logit difference is 0 by construction`);
  const ids = model.toTokens(input, { prependBos: opts.prependBos }).ids[0];
  const s = ids.length;
  const pos = resolvePosition(opts.position ?? -1, s);
  const last = pos === s - 1; // then one position of logits (and of ln_final) suffices

  const names: HookName[] = ['hook_embed', 'hook_pos_embed', 'ln_final.hook_scale'];
  for (let l = 0; l < L; l++) names.push(`blocks.${l}.attn.hook_result`, `blocks.${l}.hook_mlp_out`);
  const { logits, cache } = model.runWithCache(ids, { names, logits: last ? 'last' : 'all', interventions: opts.interventions });
  try {
    const lp = last ? 0 : pos;
    const row = (yield logits).slice(lp * V, (lp + 1) * V);
    const logit = row[tokenId] - (vsId !== undefined ? row[vsId] : 0);
    const scale = (yield cache.get('ln_final.hook_scale'))[lp];

    // the read-out direction u (tied: W_U[:, t] = E[t]) and w ⊙ u
    const u = Float64Array.from(model.tokenEmbedding(tokenId));
    if (vsId !== undefined) {
      const e = model.tokenEmbedding(vsId);
      for (let i = 0; i < d; i++) u[i] -= e[i];
    }
    const lnf = model.layerNormParams(0, 'ln_final');
    const wu = u.map((x, i) => x * lnf.w[i]);
    /** value(c): centre c, divide by the full stream's scale, project on w ⊙ u. */
    const value = (c: ArrayLike<number>, off = 0): number => {
      let mean = 0;
      for (let i = 0; i < d; i++) mean += c[off + i];
      mean /= d;
      let dot = 0;
      for (let i = 0; i < d; i++) dot += (c[off + i] - mean) * wu[i];
      return dot / scale;
    };
    function* at(name: HookName, width: number): ReadSteps<Float32Array> {
      return (yield cache.get(name)).slice(pos * width, (pos + 1) * width);
    }

    const components: DlaComponent[] = [
      { name: 'embed', value: value(yield* at('hook_embed', d)) },
      { name: 'pos_embed', value: value(yield* at('hook_pos_embed', d)) },
    ];
    let bias = 0;
    for (let i = 0; i < d; i++) bias += lnf.b[i] * u[i];
    for (let l = 0; l < L; l++) {
      const result = yield* at(`blocks.${l}.attn.hook_result`, H * d); // [h, d] at pos
      for (let h = 0; h < H; h++) components.push({ name: `L${l}.H${h}`, value: value(result, h * d) });
      components.push({ name: `L${l}.mlp`, value: value(yield* at(`blocks.${l}.hook_mlp_out`, d)) });
      bias += value(model.attnOutWeights(l).b);
    }
    components.push({ name: 'bias', value: bias });
    const total = components.reduce((a, c) => a + c.value, 0);
    return {
      model: model.name,
      ids,
      tokens: ids.map((id) => model.tokenString(id)),
      position: pos,
      token: model.tokenString(tokenId),
      token_id: tokenId,
      ...(vsId !== undefined ? { vs: model.tokenString(vsId), vs_id: vsId } : {}),
      components,
      total,
      logit,
      scale,
    };
  } finally {
    logits.dispose();
    cache.dispose();
  }
}

/** A token given as a one-token string or as an id (exactly one of them; `required` for the target). */
function pickToken(model: GPT2, what: 'token' | 'vs', text: string | undefined, id: number | undefined, V: number, required: boolean): number | undefined {
  const idName = `${what}Id`;
  if (text !== undefined && id !== undefined) throw new SpError('BAD_INPUT', `give ${what} or ${idName}, not both`);
  if (id !== undefined) {
    assertInt(idName, id, 0, V);
    return id;
  }
  if (text === undefined) {
    if (required) throw new SpError('BAD_INPUT', `DLA needs the token to attribute: ${what} (a one-token string) or ${idName}`);
    return undefined;
  }
  if (typeof text !== 'string' || text === '') throw new SpError('BAD_INPUT', `${what} must be a non-empty string (one token)`);
  const t = model.tokenId(text);
  if (t === undefined) {
    const enc = model.encode(text);
    throw new SpError('BAD_INPUT', `${what} ${JSON.stringify(text)} is ${enc.length} tokens (${enc.map((x) => JSON.stringify(model.tokenString(x))).join(' ')}), not one`);
  }
  return t;
}
