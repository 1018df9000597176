/**
 * Hugging Face `generate` logits processing, on one row of logits in float64, in HF's order:
 * repetition penalty → min-length EOS suppression → temperature → top-k → top-p → sample.
 */
import { SpError } from '../errors.js';

/** HF RepetitionPenaltyLogitsProcessor: each distinct token already in the sequence, once. */
export function applyRepetitionPenalty(logits: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const l = logits[id];
    logits[id] = l < 0 ? l * penalty : l / penalty;
  }
}

export function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

export interface SamplingParams {
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
}

/**
 * The distribution HF samples from, as (ids, probs) sorted by descending probability:
 * softmax(logits / T) restricted to the top-k, then to the smallest top set with mass ≥ top-p
 * (HF's TopPLogitsWarper), renormalised.
 */
export function samplingDistribution(logits: Float64Array, p: SamplingParams): { ids: number[]; probs: number[] } {
  if (!(p.temperature > 0)) throw new SpError('BAD_INPUT', `temperature must be > 0 when sampling (got ${p.temperature})`);
  // Tokens more than 50·T below the max have probability < e^-50 relative to the top one; all
  // 50k of them together carry < 1e-17 of the mass, below float64 resolution next to 1. Dropping
  // them before sorting keeps the distribution exact in float64 and the step fast.
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const floor = max - 50 * p.temperature;
  let ids: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] >= floor) ids.push(i);
  ids.sort((a, b) => logits[b] - logits[a] || a - b);
  if (p.topK > 0 && p.topK < ids.length) {
    // HF keeps every token whose logit ties the k-th.
    const kth = logits[ids[p.topK - 1]];
    ids = ids.filter((i, r) => r < p.topK || logits[i] === kth);
  }
  let probs = ids.map((i) => Math.exp((logits[i] - max) / p.temperature));
  let z = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((x) => x / z);
  if (p.topP < 1) {
    let cum = 0;
    let keep = ids.length;
    for (let r = 0; r < ids.length; r++) {
      cum += probs[r];
      if (cum >= p.topP) {
        keep = r + 1;
        break;
      }
    }
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    z = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((x) => x / z);
  }
  return { ids, probs };
}

/** Inverse-CDF draw with a uniform u in [0, 1). */
export function sampleFrom(dist: { ids: number[]; probs: number[] }, u: number): number {
  let cum = 0;
  for (let r = 0; r < dist.ids.length; r++) {
    cum += dist.probs[r];
    if (u < cum) return dist.ids[r];
  }
  return dist.ids[dist.ids.length - 1];
}
