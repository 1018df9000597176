/**
 * The embedding-space view of a parameter vector (Dar et al. 2022, "Analyzing Transformers in
 * Embedding Space"): scores v·Eᵀ against every token embedding, raw, and against unit-normalised
 * embeddings (cosine up to ‖v‖), which stops large-norm tokens from dominating.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { tf, tidy } from '../backend/index.js';
import { readSteps, readStepsAsync, type ReadSteps } from '../backend/reads.js';
import type { GPT2 } from '../model/gpt2.js';

export interface ProjectedToken {
  id: number;
  token: string;
  score: number;
}

export interface EmbeddingProjection {
  /** Top tokens of v·Eᵀ. */
  top: ProjectedToken[];
  /** Top tokens of v·(E_i/‖E_i‖). */
  top_normalized: ProjectedToken[];
  /** Lowest tokens of v·Eᵀ (the vector's negative direction). */
  bottom: ProjectedToken[];
}

/** Top-k of v·Eᵀ, raw and with normalised embeddings. `vector`: [d_model]. */
export function embeddingProjection(model: GPT2, vector: ArrayLike<number>, k = 20): EmbeddingProjection {
  return readSteps(projectionSteps(model, vector, k));
}

/** embeddingProjection awaiting its reads: the form for the webgpu backend (the same numbers everywhere). */
export function embeddingProjectionAsync(model: GPT2, vector: ArrayLike<number>, k = 20): Promise<EmbeddingProjection> {
  return readStepsAsync(projectionSteps(model, vector, k));
}

function* projectionSteps(model: GPT2, vector: ArrayLike<number>, k: number): ReadSteps<EmbeddingProjection> {
  const [raw, norm] = tidy(() => {
    const v = tf.tensor2d(Float32Array.from(vector), [1, vector.length]);
    const scores = model.unembedVectors(v).reshape([-1]) as tfc.Tensor1D; // [V]: W_U is tied to the token embeddings
    const embNorms = tf.tensor1d(model.tokenEmbeddingNorms()); // ‖E_i‖, [V]
    return [scores, tf.div(scores, tf.maximum(embNorms, 1e-12))];
  });
  try {
    return projection(model, Float32Array.from(yield raw), Float32Array.from(yield norm), k);
  } finally {
    raw.dispose();
    norm.dispose();
  }
}

function projection(model: GPT2, rawData: Float32Array, normData: Float32Array, k: number): EmbeddingProjection {
  const view = (ids: number[], data: Float32Array): ProjectedToken[] => ids.map((id) => ({ id, token: model.tokenString(id), score: data[id] }));
  return {
    top: view(topIndices(rawData, k), rawData),
    top_normalized: view(topIndices(normData, k), normData),
    bottom: view(topIndices(rawData.map((x) => -x), k), rawData),
  };
}

/** Indices of the k largest values, largest first (lowest index first among ties). */
export function topIndices(v: ArrayLike<number>, k: number): number[] {
  const best: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (best.length === k && !(v[i] > v[best[k - 1]])) continue;
    let r = best.length === k ? k - 1 : best.length;
    while (r > 0 && v[i] > v[best[r - 1]]) r--;
    best.splice(r, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
