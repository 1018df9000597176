/**
 * Lens numbers are as exact as float64 allows on sp's own float32 logits: probabilities, entropy,
 * KL and max-prob agree to 1e-6 relative with a separately written float64 softmax over the very
 * logits the lens reads (runWithCache + unembedResid, stacked as the lens stacks them), and ranks
 * are exact counts. A float32 normaliser (a left-to-right sum over 50,257 terms) is off by ~1e-4.
 */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, lensRows, logitLens, rankings, rankingsWatch, tf, type GPT2, type HookName } from '@sp/core';
import { FIXTURES, fixtureDir, tmpDir } from '../helpers/fixtures.js';
import { peakyModel } from './ref-lens.js';

const backend = process.env.SP_BACKEND ?? 'wasm';
const { exp, log, abs, max } = Math;

/** float32 logits [pos][row] → Float32Array(V), read the way the lens reads them (one unembedding of [pos·rows, d]). */
function lensLogits(model: GPT2, ids: number[], hooks: string[]): Float32Array[][] {
  const { logits, cache } = model.runWithCache(ids, { names: hooks as HookName[] });
  logits.dispose();
  try {
    const V = model.config.dVocab;
    const flat = tf.tidy(() => {
      const x = tf.stack(hooks.map((h) => tf.squeeze(cache.get(h as HookName), [0])), 1); // [s, R, d]
      return model.unembedResid(tf.reshape(x, [-1, model.config.dModel])).dataSync() as Float32Array;
    });
    return ids.map((_, p) => hooks.map((_, r) => flat.slice((p * hooks.length + r) * V, (p * hooks.length + r + 1) * V)));
  } finally {
    cache.dispose();
  }
}

/** Plain float64 log-softmax: max, then Σ exp(x − max) in a float64 loop. */
function logSoftmax64(l: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of l) if (v > m) m = v;
  let s = 0;
  for (const v of l) s += exp(v - m);
  const lse = m + log(s);
  return Float64Array.from(l, (v) => v - lse);
}

function entropy64(lp: Float64Array): number {
  let h = 0;
  for (const v of lp) h -= exp(v) * v;
  return h;
}

function kl64(lpFinal: Float64Array, lp: Float64Array): number {
  let s = 0;
  for (let t = 0; t < lp.length; t++) s += exp(lpFinal[t]) * (lpFinal[t] - lp[t]);
  return s;
}

const rel = (a: number, b: number) => abs(a - b) / max(abs(b), 1e-300);

const tmp = tmpDir('sp-lens64-');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const models: Array<[string, () => string]> = [
  ...FIXTURES.map((n): [string, () => string] => [n, () => fixtureDir(n)]),
  ['peaked random model', () => {
    const dir = path.join(tmp, 'peaky');
    peakyModel(dir);
    return dir;
  }],
];

describe.each(models)('lens vs a float64 softmax of the same float32 logits (%s)', (_name, dirOf) => {
  let model: GPT2;
  const ids = [464, 3139, 286, 4881, 318, 6342];
  let lp: Float64Array[][]; // [pos][row of the `all` view] log-probs
  let logits: Float32Array[][];
  let hooks: string[];
  beforeAll(async () => {
    model = await gpt2(dirOf(), { backend });
    hooks = lensRows(model.config.nLayer, 'all').map((r) => r.hook);
    logits = lensLogits(model, ids, hooks);
    lp = logits.map((rows) => rows.map(logSoftmax64));
  });
  afterAll(() => model.dispose());

  test('top-k probabilities, max_prob, entropy and KL to 1e-6 relative', () => {
    const r = logitLens(model, ids, { view: 'all', topk: 10 });
    const out = hooks.length - 1; // the output row is the last of the `all` view
    let worst = { prob: 0, entropy: 0, kl: 0 };
    r.layers.forEach((row, ri) => row.positions.forEach((cell, p) => {
      const want = lp[p][ri];
      for (const t of cell.top) worst.prob = max(worst.prob, rel(t.prob, exp(want[t.id])));
      worst.prob = max(worst.prob, rel(cell.max_prob, exp(max(...want))));
      worst.entropy = max(worst.entropy, rel(cell.entropy, entropy64(want)));
      const k = kl64(lp[p][out], want);
      if (ri === out) expect(cell.kl).toBe(0);
      else worst.kl = max(worst.kl, rel(cell.kl, k));
      // the top ids are the largest logits, in order
      const sorted = Array.from(logits[p][ri]).sort((a, b) => b - a);
      cell.top.forEach((t, j) => expect(logits[p][ri][t.id]).toBe(sorted[j]));
    }));
    expect(worst.prob).toBeLessThan(1e-6);
    expect(worst.entropy).toBeLessThan(1e-6);
    expect(worst.kl).toBeLessThan(1e-6);
  });

  test('rankings and rankingsWatch: probabilities to 1e-6 relative, ranks exact', () => {
    const rowsOf = lensRows(model.config.nLayer, 'all');
    const rk = rankings(model, ids, { view: 'all' });
    const wr = rankingsWatch(model, ids, [' is', ' are', 262], { view: 'all', position: 3 });
    const rankOf = (l: Float32Array, id: number) => 1 + Array.from(l).filter((v) => v > l[id]).length;
    let worst = 0;
    for (const pos of rk.positions) {
      rowsOf.forEach((_, ri) => {
        worst = max(worst, rel(pos.probs[ri], exp(lp[pos.pos][ri][pos.target.id])));
        expect(pos.ranks[ri]).toBe(rankOf(logits[pos.pos][ri], pos.target.id));
      });
    }
    wr.layers.forEach((row, ri) => wr.watch.forEach(({ id }, j) => {
      worst = max(worst, rel(row.probs[j], exp(lp[3][ri][id])));
      expect(row.ranks[j]).toBe(rankOf(logits[3][ri], id));
    }));
    expect(worst).toBeLessThan(1e-6);
  });
});
