/**
 * Top-contributing FF neurons at a position (LM-Debugger's "significant values", Geva et al. 2022):
 * the FF layer writes Σ_j m_j v_j into the stream (m_j = mlp.hook_post, v_j = row j of c_proj), so
 * neuron j's contribution is ranked by m_j·‖v_j‖, and v_j is read in embedding space as E·v_j.
 * From here a user can take (layer, index) to a speaking probe of the neuron.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf, tidy } from '../backend/index.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import { assertInt } from '../errors.js';
import type { HookName } from '../hooks/index.js';
import type { GPT2, ModelInput } from '../model/gpt2.js';
import { isBatch, tokens } from './lens.js';
import { resolvePosition, tokenNamer, type LensRunOptions } from './pass.js';
import type { NeuronContribution, NeuronsResult } from './types.js';

export interface TopNeuronsOptions extends Omit<LensRunOptions, 'view'> {
  /** Position (default -1: the last; negative counts from the end). */
  position?: number;
  /** Layers to search (default all). */
  layers?: number[];
  /** Neurons to return, over all searched layers (default 10). */
  k?: number;
  /** Embedding-space tokens per neuron (default 10). */
  topTokens?: number;
}

export function topNeurons(model: GPT2, input: string | number[], opts?: TopNeuronsOptions): NeuronsResult;
export function topNeurons(model: GPT2, input: string[] | number[][], opts?: TopNeuronsOptions): NeuronsResult[];
export function topNeurons(model: GPT2, input: ModelInput, opts: TopNeuronsOptions = {}): NeuronsResult | NeuronsResult[] {
  return readSteps(topNeuronsSteps(model, input, opts));
}

/** topNeurons awaiting its reads: the form for the webgpu backend (the same numbers on every backend). */
export function topNeuronsAsync(model: GPT2, input: string | number[], opts?: TopNeuronsOptions): Promise<NeuronsResult>;
export function topNeuronsAsync(model: GPT2, input: string[] | number[][], opts?: TopNeuronsOptions): Promise<NeuronsResult[]>;
export function topNeuronsAsync(model: GPT2, input: ModelInput, opts: TopNeuronsOptions = {}): Promise<NeuronsResult | NeuronsResult[]> {
  return readStepsAsync(topNeuronsSteps(model, input, opts));
}

/** Copies of each tensor's values (read one after another), then the tensors disposed. */
function* readAll(ts: tfc.Tensor[]): ReadSteps<Float64Array[]> {
  try {
    const out: Float64Array[] = [];
    for (const t of ts) out.push(Float64Array.from(yield t));
    return out;
  } finally {
    tf.dispose(ts);
  }
}

function* topNeuronsSteps(model: GPT2, input: ModelInput, opts: TopNeuronsOptions): ReadSteps<NeuronsResult | NeuronsResult[]> {
  const { nLayer, dMlp: m, dVocab: V } = model.config;
  const layers = opts.layers ?? Array.from({ length: nLayer }, (_, i) => i);
  layers.forEach((l) => assertInt('layer', l, 0, nLayer));
  const L = layers.length;
  const k = opts.k ?? 10;
  assertInt('k (neurons)', k, 1, L * m + 1);
  const nTok = opts.topTokens ?? 10;
  assertInt('topTokens', nTok, 1, V + 1);
  const batch = tokens(model, input);
  const s = batch.ids[0].length;
  const cells = batch.lengths.map((n) => resolvePosition(opts.position ?? -1, n));
  const B = cells.length;

  // 1. scores m_j·‖v_j‖ over the searched layers, top-k by |score| per prompt.
  const [idx, coef, score, norm] = yield* readAll(tidy(() => {
    const hooks = layers.map((l): HookName => `blocks.${l}.mlp.hook_post`);
    const { acts } = model.capture(batch, hooks, { embeds: opts.embeds, inject: opts.inject, fwdHooks: opts.fwdHooks, interventions: opts.interventions, logits: 'none' });
    const post = tf.reshape(tf.stack(hooks.map((h) => acts.get(h)!), 2), [-1, L * m]); // [b·s, L·m]
    const coefs = tf.gather(post, tf.tensor1d(cells.map((p, b) => b * s + p), 'int32')); // [B, L·m]
    // ‖v_j‖ for every neuron of the searched layers: row norms of c_proj [m, d]
    const norms = tf.tensor2d(concat(layers.map((l) => model.ffValueNorms(l))), [1, L * m]);
    const scores = tf.mul(coefs, norms); // [B, L·m]
    const { indices } = tf.topk(tf.abs(scores), k); // [B, k]
    const flat = tf.add(indices, tf.mul(tf.reshape(tf.range(0, B, 1, 'int32'), [B, 1]), tf.scalar(L * m, 'int32'))); // into [B·L·m]
    const pick = (t: tfc.Tensor) => tf.gather(tf.reshape(t, [-1]), flat);
    const n = tf.gather(tf.reshape(norms, [-1]), indices);
    return [indices, pick(coefs), pick(scores), n];
  }));

  // 2. the chosen value vectors in embedding space: one [B·k, d] @ [d, V] matmul, then top tokens.
  const which = Array.from(idx, (i) => ({ layer: layers[Math.floor(i / m)], index: i % m }));
  const values = which.map((w) => model.ffValue(w.layer, w.index));
  const [tokIds, tokLogits] = yield* readAll(tidy(() => {
    const vmat = tf.tensor2d(values.flatMap((v) => Array.from(v)), [values.length, model.config.dModel]);
    const { values: top, indices } = tf.topk(model.unembedVectors(vmat), nTok); // [B·k, nTok]
    return [indices, top];
  }));

  const name = tokenNamer(model);
  const results = cells.map((position, b): NeuronsResult => {
    const ids = batch.ids[b].slice(0, batch.lengths[b]);
    const neurons = Array.from({ length: k }, (_, j): NeuronContribution => {
      const c = b * k + j;
      return {
        ...which[c],
        coefficient: coef[c],
        value_norm: norm[c],
        score: score[c],
        top: Array.from({ length: nTok }, (_, t) => {
          const id = tokIds[c * nTok + t];
          return { id, token: name(id), logit: tokLogits[c * nTok + t] };
        }),
      };
    });
    return { model: model.name, ids, tokens: ids.map(name), position, neurons };
  });
  return isBatch(input) ? results : results[0];
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((o, p) => (out.set(p, o), o + p.length), 0);
  return out;
}
