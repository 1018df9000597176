/**
 * Shared by the generate and probe tests: a random GPT-2 written to disk (so the library loads it
 * exactly as a user's checkpoint) together with its float64 reference weights, and a greedy
 * checker that tolerates only genuine near-ties.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '@sp/core';
import { applyRepetitionPenalty, refForward, type RefConfig, type RefOptions, type RefWeights } from '../reference/gpt2-ref.js';
import { randomRefWeights, type RandomRefWeights, type RandomWeightOptions } from '../reference/random-model.js';
import { tmpDir } from '../helpers/fixtures.js';

export const TIE_TOL = 1e-4;

/** Write a random GPT-2 (GPT-2 vocabulary, so the bundled tokenizer fits) and return dir + weights. */
export function randomModelDir(cfg: Partial<RefConfig> = {}, seed = 7, opts: RandomWeightOptions = {}): { dir: string; w: RandomRefWeights } {
  const full: RefConfig = { nLayer: 2, nHead: 3, dModel: 24, nCtx: 64, vocabSize: 50257, eps: 1e-5, ...cfg };
  // Larger projections than GPT-2's init so attention and MLP visibly shape the output (padding
  // or position mistakes must change the tokens, not just the 6th decimal).
  const w = randomRefWeights(full, seed, { matrixStd: 0.2, ...opts });
  const dir = tmpDir('sp-gen-');
  writeSafetensors(path.join(dir, 'model.safetensors'), w.tensors());
  fs.writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({ model_type: 'gpt2', n_layer: full.nLayer, n_head: full.nHead, n_embd: full.dModel, n_positions: full.nCtx, vocab_size: full.vocabSize, layer_norm_epsilon: full.eps }),
  );
  return { dir, w };
}

/** FF key j of `layer` from reference weights (column j of c_fc [d, 4d]). */
export function refFfKey(w: RefWeights, layer: number, j: number): number[] {
  const d = w.config.dModel;
  const W = w.get(`h.${layer}.mlp.c_fc.weight`);
  return Array.from({ length: d }, (_, r) => W[r * 4 * d + j]);
}

export interface GreedyCheck extends RefOptions {
  repetitionPenalty?: number;
  /** Token ids set to -inf at step i (min-length EOS suppression). */
  suppress?: (step: number, seq: number[]) => number[];
  /** Prompt positions excluded from the repetition penalty (virtual tokens). */
  penaltySkip?: number[];
}

/**
 * Walk the reference along the tokens the library chose: at every step the chosen token must be
 * the reference argmax, or within TIE_TOL of it (float32 vs float64 may order a near-tie either
 * way). Returns how many steps were exact argmax matches.
 */
export function expectGreedyPath(w: RefWeights, prompt: number[], got: number[], opts: GreedyCheck = {}): number {
  const { repetitionPenalty = 1, suppress, penaltySkip = [], ...ref } = opts;
  const seq = prompt.slice();
  let exact = 0;
  for (let i = 0; i < got.length; i++) {
    const { logits } = refForward(w, seq, ref);
    let last = logits[logits.length - 1];
    const seen = seq.filter((_, p) => !penaltySkip.includes(p));
    if (repetitionPenalty !== 1) last = applyRepetitionPenalty(last, seen, repetitionPenalty);
    for (const id of suppress?.(i, seq) ?? []) last[id] = -Infinity;
    let best = 0;
    for (let t = 1; t < last.length; t++) if (last[t] > last[best]) best = t;
    if (got[i] === best) exact++;
    else if (!(last[best] - last[got[i]] < TIE_TOL)) {
      throw new Error(`step ${i}: library chose ${got[i]} (ref logit ${last[got[i]]}), reference argmax ${best} (${last[best]})`);
    }
    seq.push(got[i]);
  }
  return exact;
}

/** Plain float64 HF sampling distribution (written independently of logits-processors.ts). */
export function hfDistribution(logits: number[], temperature: number, topK: number, topP: number): Map<number, number> {
  const scaled = logits.map((l) => l / temperature);
  // TopKLogitsWarper: remove scores < k-th largest.
  if (topK > 0 && topK < scaled.length) {
    const kth = [...scaled].sort((a, b) => b - a)[topK - 1];
    for (let i = 0; i < scaled.length; i++) if (scaled[i] < kth) scaled[i] = -Infinity;
  }
  const softmax = (v: number[]) => {
    const m = Math.max(...v.filter(Number.isFinite));
    const e = v.map((x) => (Number.isFinite(x) ? Math.exp(x - m) : 0));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  };
  // TopPLogitsWarper: ascending sort, remove while cumulative mass <= 1 - p (keep the top one).
  if (topP < 1) {
    const p = softmax(scaled);
    const asc = scaled.map((_, i) => i).sort((a, b) => scaled[a] - scaled[b]);
    let cum = 0;
    for (let r = 0; r < asc.length - 1; r++) {
      cum += p[asc[r]];
      if (cum <= 1 - topP) scaled[asc[r]] = -Infinity;
    }
  }
  const probs = softmax(scaled);
  const out = new Map<number, number>();
  probs.forEach((x, i) => x > 0 && out.set(i, x));
  return out;
}

/** Upper 0.999 quantile of chi-square with `df` degrees of freedom (Wilson–Hilferty, z = 3.09). */
export function chi2Critical999(df: number): number {
  const z = 3.0902;
  const a = 2 / (9 * df);
  return df * (1 - a + z * Math.sqrt(a)) ** 3;
}
