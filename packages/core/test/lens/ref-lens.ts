/**
 * Float64 lens quantities computed from the independent reference GPT-2 (test/reference), for any
 * hook point: log-probs of softmax(wte · ln_f(x)) with layernorm statistics of x itself.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeSafetensors } from '@sp/core';
import { refForward, type RefConfig, type RefOptions, type RefWeights } from '../reference/gpt2-ref.js';
import { randomRefWeights } from '../reference/random-model.js';

const { sqrt, exp, log } = Math;

/** log softmax(unembed(ln_f(x))) for each position of hook `name`: [pos][vocab]. */
export function refLensAt(w: RefWeights, cache: ReturnType<typeof refForward>['cache'], name: string): Float64Array[] {
  const { dModel: d, vocabSize: V, eps } = w.config;
  const x = cache.get(name)!.data;
  const seq = x.length / d;
  const g = w.get('ln_f.weight');
  const b = w.get('ln_f.bias');
  const wte = w.get('wte.weight');
  const out: Float64Array[] = [];
  for (let p = 0; p < seq; p++) {
    const row = x.subarray(p * d, (p + 1) * d);
    let mean = 0;
    for (const v of row) mean += v;
    mean /= d;
    let variance = 0;
    for (const v of row) variance += (v - mean) ** 2;
    variance /= d;
    const n = Array.from(row, (v, i) => ((v - mean) / sqrt(variance + eps)) * g[i] + b[i]);
    const logits = new Float64Array(V);
    let max = -Infinity;
    for (let t = 0; t < V; t++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += n[i] * wte[t * d + i];
      logits[t] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let t = 0; t < V; t++) sum += exp(logits[t] - max);
    const lse = max + log(sum);
    for (let t = 0; t < V; t++) logits[t] -= lse;
    out.push(logits);
  }
  return out;
}

/** Reference lens rows for hook names, [row][pos][vocab] log-probs. */
export function refLensRows(w: RefWeights, ids: number[], hooks: string[], opts: RefOptions = {}): Float64Array[][] {
  const { cache } = refForward(w, ids, opts);
  return hooks.map((h) => refLensAt(w, cache, h));
}

export function entropy(lp: Float64Array): number {
  let h = 0;
  for (const v of lp) h -= exp(v) * v;
  return h;
}

export function kl(pFinal: Float64Array, lp: Float64Array): number {
  let s = 0;
  for (let t = 0; t < lp.length; t++) s += exp(pFinal[t]) * (pFinal[t] - lp[t]);
  return s;
}

/** Ranks consistent with float32 round-off: [1 + #(lp > t + tol), 1 + #(lp > t − tol)]. */
export function rankWindow(lp: Float64Array, id: number, tol = 2e-5): [number, number] {
  let lo = 1;
  let hi = 1;
  for (const v of lp) {
    if (v > lp[id] + tol) lo++;
    if (v > lp[id] - tol) hi++;
  }
  return [lo, hi - 1]; // the target itself is not above itself
}

export function topIds(lp: Float64Array, k: number): number[] {
  return Array.from(lp.keys()).sort((a, b) => lp[b] - lp[a]).slice(0, k);
}

/**
 * A random GPT-2 with large embeddings, so lens distributions are peaked (the test fixtures'
 * are nearly uniform over 50257 tokens): written as an HF dir, with its reference weights.
 */
export function peakyModel(dir: string, cfg: Partial<RefConfig> = {}, seed = 99): RefWeights {
  const c: RefConfig = { nLayer: 3, nHead: 2, dModel: 16, nCtx: 16, vocabSize: 50257, eps: 1e-5, ...cfg };
  const w = randomRefWeights(c, seed, { embedStd: 1.2, matrixStd: 0.3, lnStd: 0.3 });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ n_layer: c.nLayer, n_head: c.nHead, n_embd: c.dModel, n_positions: c.nCtx, vocab_size: c.vocabSize, layer_norm_epsilon: c.eps }));
  writeSafetensors(path.join(dir, 'model.safetensors'), w.tensors().map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: t.data })));
  return w;
}
