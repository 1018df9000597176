/**
 * Input attribution (Captum / Ecco saliency) and gradients w.r.t. any hook point's activation.
 *
 * With e_p the token embedding at position p (hook_embed: before the position embedding is added)
 * and g_p = ∂ logit(target at `position`) / ∂ e_p:
 *  - grad:                 ‖g_p‖₂
 *  - grad-x-input:         Σ_d g_p ⊙ e_p
 *  - integrated-gradients: Σ_d e_p ⊙ mean_{k=1..steps} g_p((k/steps)·e), baseline 0 for every token
 *    embedding (position embeddings kept), so Σ_p attributions ≈ target(x) − target(baseline);
 *    the right-Riemann sum's error shrinks as 1/steps. The steps run as batch rows, `batchSize` at a time.
 * `normalize`: Ecco's view, |a_p| / Σ|a|.
 * Gradients are tf.grad through the model on the hook API: the activation at the hook point is
 * replaced by the differentiated tensor (the same values, so the forward pass is unchanged).
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { SpError, assertInt } from '../errors.js';
import type { HookName } from '../hooks/index.js';
import type { GPT2, ModelInput } from '../model/gpt2.js';
import type { NeuronIntervention } from '../model/interventions.js';
import { resolvePosition } from '../lens/pass.js';

export const ATTRIBUTION_METHODS = ['grad', 'grad-x-input', 'integrated-gradients'] as const;
export type AttributionMethod = (typeof ATTRIBUTION_METHODS)[number];

export interface AttributionOptions {
  /** The token whose logit is attributed: its id… */
  targetId?: number;
  /** …or a string that is exactly one token (`' is'`). */
  targetToken?: string;
  /** Position whose logit is read (default -1: the last; negative counts from the end). */
  position?: number;
  /** Default 'grad-x-input'. */
  method?: AttributionMethod;
  /** Integrated-gradients steps (default 64). */
  steps?: number;
  /** Integrated-gradients rows per forward/backward pass (default 16). */
  batchSize?: number;
  /** Ecco's normalised view: |a_p| / Σ_q |a_q| (non-negative, sums to 1). */
  normalize?: boolean;
  /** Prepend `<|endoftext|>` (see ForwardOptions.prependBos); positions then count it. */
  prependBos?: boolean;
  /** FF neuron interventions (as in model.forward), applied in every pass. */
  interventions?: NeuronIntervention[];
}

/** `sp attr --json`. */
export interface AttributionResult {
  ids: number[];
  tokens: string[];
  target_id: number;
  target_token: string;
  position: number;
  method: AttributionMethod;
  /** The target's logit at `position` (float32 forward pass). */
  target_value: number;
  /** One per input position. */
  attributions: number[];
  normalize: boolean;
  /** Integrated gradients only. */
  steps?: number;
}

/** Attribution of one prompt's target logit to its input tokens. */
export function inputAttribution(model: GPT2, input: string | number[], opts: AttributionOptions = {}): AttributionResult {
  return readSteps(attributionSteps(model, input, opts));
}

/** inputAttribution awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function inputAttributionAsync(model: GPT2, input: string | number[], opts: AttributionOptions = {}): Promise<AttributionResult> {
  return readStepsAsync(attributionSteps(model, input, opts));
}

function* attributionSteps(model: GPT2, input: string | number[], opts: AttributionOptions): ReadSteps<AttributionResult> {
  if (Array.isArray(input) && input.some((x) => Array.isArray(x) || typeof x === 'string')) {
    throw new SpError('BAD_INPUT', 'inputAttribution takes one prompt (text or token ids), not a batch');
  }
  const method = opts.method ?? 'grad-x-input';
  if (!(ATTRIBUTION_METHODS as readonly string[]).includes(method)) {
    throw new SpError('BAD_INPUT', `unknown attribution method "${String(method)}" (use ${ATTRIBUTION_METHODS.join(', ')})`);
  }
  const steps = opts.steps ?? 64;
  assertInt('steps', steps, 1, 100001);
  const batchSize = opts.batchSize ?? 16;
  assertInt('batchSize', batchSize, 1, 100001);
  const targetId = pickTarget(model, opts);
  const ids = model.toTokens(input, { prependBos: opts.prependBos }).ids[0];
  const s = ids.length;
  const pos = resolvePosition(opts.position ?? -1, s);
  const fwd = { interventions: opts.interventions };

  const { logits, cache } = model.runWithCache(ids, { ...fwd, names: ['hook_embed'] });
  let e: Float32Array, value: number;
  try {
    e = Float32Array.from(yield cache.get('hook_embed'));
    value = (yield logits)[pos * model.config.dVocab + targetId];
  } finally {
    logits.dispose();
    cache.dispose();
  }
  const d = model.config.dModel;
  const target = (logits: tfc.Tensor) => logitAt(logits, pos, targetId, s);

  let perPos: number[];
  if (method === 'integrated-gradients') {
    // Σ over k of g_p((k/steps)·e), chunks of `batchSize` steps as batch rows.
    const gsum = new Float64Array(s * d);
    for (let k0 = 1; k0 <= steps; k0 += batchSize) {
      const n = Math.min(batchSize, steps - k0 + 1);
      const scaled = new Float32Array(n * s * d);
      for (let r = 0; r < n; r++) {
        const a = (k0 + r) / steps;
        for (let i = 0; i < s * d; i++) scaled[r * s * d + i] = a * e[i];
      }
      const g = (yield* hookGradient(model, Array.from({ length: n }, () => ids), 'hook_embed', tf.tensor3d(scaled, [n, s, d]), target, fwd)).grad;
      for (let r = 0; r < n; r++) for (let i = 0; i < s * d; i++) gsum[i] += g[r * s * d + i];
    }
    perPos = Array.from({ length: s }, (_, p) => {
      let a = 0;
      for (let i = 0; i < d; i++) a += e[p * d + i] * (gsum[p * d + i] / steps);
      return a;
    });
  } else {
    const g = (yield* hookGradient(model, [ids], 'hook_embed', tf.tensor3d(e, [1, s, d]), target, fwd)).grad;
    perPos = Array.from({ length: s }, (_, p) => {
      let a = 0;
      for (let i = 0; i < d; i++) a += method === 'grad' ? g[p * d + i] ** 2 : g[p * d + i] * e[p * d + i];
      return method === 'grad' ? Math.sqrt(a) : a;
    });
  }
  if (opts.normalize) {
    const total = perPos.reduce((t, v) => t + Math.abs(v), 0);
    perPos = perPos.map((v) => (total > 0 ? Math.abs(v) / total : 0));
  }
  return {
    ids,
    tokens: ids.map((i) => model.tokenString(i)),
    target_id: targetId,
    target_token: model.tokenString(targetId),
    position: pos,
    method,
    target_value: value,
    attributions: perPos,
    normalize: !!opts.normalize,
    ...(method === 'integrated-gradients' ? { steps } : {}),
  };
}

/** Σ over batch rows of logits[r, pos, id] (logits [b, s or 1, V]: a one-position result is the last). */
function logitAt(logits: tfc.Tensor, pos: number, id: number, s: number): tfc.Scalar {
  const [b, p] = logits.shape;
  const at = p === 1 && s > 1 ? 0 : pos;
  return tf.sum(tf.slice(logits, [0, at, id], [b, 1, 1]));
}

export interface HookGradient {
  /** The scalar's value. */
  value: number;
  /** ∂ value / ∂ activation, the activation's shape flattened (row-major). */
  grad: Float32Array;
  shape: number[];
}

/**
 * The gradient of `fn(logits)` (a scalar) w.r.t. the activation at hook point `hook` of a run of
 * `input`, e.g. ∂ logit / ∂ blocks.3.hook_resid_pre. The activation is read with one run and
 * then differentiated through a second run that substitutes it (same values). A gradient w.r.t.
 * `hook_embed` at a virtual-token position is the gradient w.r.t. that vector. Tensors disposed.
 */
export function gradientWrt(model: GPT2, input: ModelInput, hook: HookName, fn: (logits: tfc.Tensor3D) => tfc.Scalar, opts: { interventions?: NeuronIntervention[]; prependBos?: boolean } = {}): HookGradient {
  return readSteps(gradientSteps(model, input, hook, fn, opts));
}

/** gradientWrt awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function gradientWrtAsync(model: GPT2, input: ModelInput, hook: HookName, fn: (logits: tfc.Tensor3D) => tfc.Scalar, opts: { interventions?: NeuronIntervention[]; prependBos?: boolean } = {}): Promise<HookGradient> {
  return readStepsAsync(gradientSteps(model, input, hook, fn, opts));
}

function* gradientSteps(model: GPT2, input: ModelInput, hook: HookName, fn: (logits: tfc.Tensor3D) => tfc.Scalar, opts: { interventions?: NeuronIntervention[]; prependBos?: boolean }): ReadSteps<HookGradient> {
  if (!model.hookNames().includes(hook)) throw new SpError('BAD_INPUT', `unknown hook point "${hook}" (see model.hookNames())`);
  const batch = model.toTokens(input, { prependBos: opts.prependBos });
  if (batch.mask.some((m) => m.includes(0))) throw new SpError('BAD_INPUT', 'gradientWrt needs equal-length inputs');
  const { logits, cache } = model.runWithCache(batch.ids, { interventions: opts.interventions, names: [hook] });
  logits.dispose();
  let act: tfc.Tensor;
  try {
    act = tf.clone(cache.get(hook));
  } finally {
    cache.dispose();
  }
  return yield* hookGradient(model, batch.ids, hook, act, fn, opts);
}

/** ∂ fn(logits) / ∂ x where x replaces the activation at `hook` (x is taken and disposed). */
function* hookGradient(model: GPT2, ids: number[][], hook: HookName, x: tfc.Tensor, fn: (logits: tfc.Tensor3D) => tfc.Scalar, opts: { interventions?: NeuronIntervention[] }): ReadSteps<HookGradient> {
  try {
    const { value, grad } = tf.valueAndGrad((v: tfc.Tensor) => {
      const out = fn(model.forward(ids, { interventions: opts.interventions, fwdHooks: [[hook, () => v]] }));
      if (out.rank !== 0) throw new SpError('BAD_INPUT', `the function of the logits must return a scalar, got shape [${out.shape}]`);
      return out as tfc.Scalar;
    })(x);
    try {
      const v = (yield value)[0];
      return { value: v, grad: Float32Array.from(yield grad), shape: x.shape };
    } finally {
      value.dispose();
      grad.dispose();
    }
  } finally {
    x.dispose();
  }
}

function pickTarget(model: GPT2, opts: AttributionOptions): number {
  const V = model.config.dVocab;
  if (opts.targetToken !== undefined && opts.targetId !== undefined) throw new SpError('BAD_INPUT', 'give targetToken or targetId, not both');
  if (opts.targetId !== undefined) {
    assertInt('targetId', opts.targetId, 0, V);
    return opts.targetId;
  }
  const text = opts.targetToken;
  if (text === undefined) throw new SpError('BAD_INPUT', 'attribution needs a target: targetToken (a one-token string) or targetId');
  if (typeof text !== 'string' || text === '') throw new SpError('BAD_INPUT', 'targetToken must be a non-empty string (one token)');
  const t = model.tokenId(text);
  if (t === undefined) {
    const enc = model.encode(text);
    throw new SpError('BAD_INPUT', `target token ${JSON.stringify(text)} is ${enc.length} tokens (${enc.map((x) => JSON.stringify(model.tokenString(x))).join(' ')}), not one`);
  }
  return t;
}
