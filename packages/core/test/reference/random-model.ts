/**
 * Deterministic random GPT-2 weights for tests (mulberry32 + Box-Muller), independent of the library.
 * All data is Float32Array, so every value is exactly representable in float32 and a model that
 * loads them as float32 sees the same numbers as the float64 reference.
 */
import type { RefConfig, RefWeights } from './gpt2-ref.js';

// Module-level aliases: looking up the global `Math` inside jest's vm context is slow in hot loops.
const { imul, sqrt, log, sin, cos, PI } = Math;

export interface RandomTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface RandomRefWeights extends RefWeights {
  get(name: string): Float32Array;
  /** Every tensor with its shape, canonical HF names (no `transformer.` prefix), Conv1D layout. */
  tensors(): RandomTensor[];
}

export interface RandomWeightOptions {
  /** std of the projection matrices (c_attn, c_proj, c_fc); default 0.02 as in GPT-2 init. */
  matrixStd?: number;
  /** std of wte and wpe; default 0.3. */
  embedStd?: number;
  /** std of LayerNorm weights around 1; default 0.1. */
  lnStd?: number;
  /** std of all biases (LayerNorm and linear); default 0.02. */
  biasStd?: number;
}

/** mulberry32: a small 32-bit seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples via Box-Muller on a uniform source. */
export function gaussian(uniform: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform();
    const v = uniform();
    const r = sqrt(-2 * log(u));
    spare = r * sin(2 * PI * v);
    return r * cos(2 * PI * v);
  };
}

export function randomRefWeights(cfg: RefConfig, seed: number, opts: RandomWeightOptions = {}): RandomRefWeights {
  const { matrixStd = 0.02, embedStd = 0.3, lnStd = 0.1, biasStd = 0.02 } = opts;
  if (cfg.dModel % cfg.nHead !== 0) throw new Error(`randomRefWeights: dModel ${cfg.dModel} not divisible by nHead ${cfg.nHead}`);
  const normal = gaussian(mulberry32(seed));
  const d = cfg.dModel;
  const list: RandomTensor[] = [];
  const make = (name: string, shape: number[], mean: number, std: number): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n); // assignment rounds to float32
    for (let i = 0; i < n; i++) data[i] = mean + std * normal();
    list.push({ name, shape, data });
  };

  make('wte.weight', [cfg.vocabSize, d], 0, embedStd);
  make('wpe.weight', [cfg.nCtx, d], 0, embedStd);
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `h.${l}.`;
    make(`${p}ln_1.weight`, [d], 1, lnStd);
    make(`${p}ln_1.bias`, [d], 0, biasStd);
    make(`${p}attn.c_attn.weight`, [d, 3 * d], 0, matrixStd);
    make(`${p}attn.c_attn.bias`, [3 * d], 0, biasStd);
    make(`${p}attn.c_proj.weight`, [d, d], 0, matrixStd);
    make(`${p}attn.c_proj.bias`, [d], 0, biasStd);
    make(`${p}ln_2.weight`, [d], 1, lnStd);
    make(`${p}ln_2.bias`, [d], 0, biasStd);
    make(`${p}mlp.c_fc.weight`, [d, 4 * d], 0, matrixStd);
    make(`${p}mlp.c_fc.bias`, [4 * d], 0, biasStd);
    make(`${p}mlp.c_proj.weight`, [4 * d, d], 0, matrixStd);
    make(`${p}mlp.c_proj.bias`, [d], 0, biasStd);
  }
  make('ln_f.weight', [d], 1, lnStd);
  make('ln_f.bias', [d], 0, biasStd);

  const byName = new Map(list.map((t) => [t.name, t]));
  return {
    config: { ...cfg },
    get(name: string): Float32Array {
      const t = byName.get(name);
      if (!t) throw new Error(`randomRefWeights: no tensor ${name}`);
      return t.data;
    },
    tensors: () => list.map((t) => ({ name: t.name, shape: t.shape.slice(), data: t.data })),
  };
}
