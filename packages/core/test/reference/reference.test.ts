/**
 * Validates the float64 reference GPT-2 (used by other tests to check the tfjs implementation)
 * against golden answers of an independent numpy GPT-2 in packages/core/test/fixtures, plus internal
 * consistency checks.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fixturesRoot, type Golden, type GoldenCase } from '../helpers/fixtures.js';
import {
  applyRepetitionPenalty,
  logSoftmax,
  refForward,
  refGreedy,
  refLens,
  type RefConfig,
  type RefOptions,
  type RefWeights,
} from './gpt2-ref.js';
import { randomRefWeights } from './random-model.js';
import { bf16ToNumber, f16ToNumber, readSafetensorsDir } from './safetensors-mini.js';

const fixturesDir = fixturesRoot;

// Module-level aliases: looking up the global `Math` inside jest's vm context is slow in hot loops.
const M = Math;

const LOGIT_TOL = 1e-4;
const PROB_TOL = 1e-5;

/** FF key j of layer: column j of h.{layer}.mlp.c_fc.weight [d, 4d]. */
function ffKey(w: RefWeights, layer: number, j: number): number[] {
  const d = w.config.dModel;
  const W = w.get(`h.${layer}.mlp.c_fc.weight`);
  return Array.from({ length: d }, (_, r) => W[r * 4 * d + j]);
}

/** FF value j of layer: row j of h.{layer}.mlp.c_proj.weight [4d, d]. */
function ffValue(w: RefWeights, layer: number, j: number): number[] {
  const d = w.config.dModel;
  return Array.from(w.get(`h.${layer}.mlp.c_proj.weight`).subarray(j * d, (j + 1) * d));
}

function optsFor(w: RefWeights, c: GoldenCase): RefOptions {
  if (!c.inject) return {};
  const [pos, layer, j] = c.inject;
  return { embeds: [{ pos, vector: ffKey(w, layer, j) }] };
}

/** Ids of the k largest values, largest first (lowest id first on exact ties). */
function sortedIds(v: number[], k: number): number[] {
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

/**
 * Our top-k (by `values`) must match the golden ids rank by rank, except that a swap is allowed
 * where the two tokens' values (logits or log-probs) differ by less than `tol`.
 */
function expectTopIds(values: number[], goldIds: number[], tol: number, what: string): void {
  const ours = sortedIds(values, goldIds.length);
  for (let r = 0; r < goldIds.length; r++) {
    if (ours[r] === goldIds[r]) continue;
    const gap = Math.abs(values[ours[r]] - values[goldIds[r]]);
    if (!(gap < tol)) {
      throw new Error(`${what}: rank ${r} ours ${ours[r]} (${values[ours[r]]}) vs golden ${goldIds[r]} (${values[goldIds[r]]}), gap ${gap}`);
    }
  }
}

function logsumexp(v: number[]): number {
  let max = -Infinity;
  for (const x of v) if (x > max) max = x;
  let s = 0;
  for (const x of v) s += M.exp(x - max);
  return max + M.log(s);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = M.max(m, M.abs(a[i] - b[i]));
  return m;
}

for (const fixture of ['tiny-gpt2', 'tiny-gpt2-f16-prefixed']) {
  describe(`reference GPT-2 vs numpy golden: ${fixture}`, () => {
    const dir = path.join(fixturesDir, fixture);
    const golden = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8')) as Golden;
    const w = readSafetensorsDir(dir);

    it('reads the config', () => {
      expect(w.config.nLayer).toBe(golden.model.n_layer);
      expect(w.config.nHead).toBe(golden.model.n_head);
      expect(w.config.dModel).toBe(golden.model.d_model);
      expect(w.config.vocabSize).toBe(50257);
      expect(w.config.nCtx).toBe(64);
      expect(w.config.eps).toBe(1e-5);
      expect(w.names()).toContain('wte.weight');
      expect(w.names().some((n) => n.startsWith('transformer.'))).toBe(false);
      expect(w.shape('wte.weight')).toEqual([50257, golden.model.d_model]);
    });

    it('ff_key / ff_value first8', () => {
      const { ff_key: k, ff_value: v } = golden;
      expect(maxAbsDiff(ffKey(w, k.layer, k.index).slice(0, 8), k.first8)).toBeLessThan(1e-7);
      expect(maxAbsDiff(ffValue(w, v.layer, v.index).slice(0, 8), v.first8)).toBeLessThan(1e-7);
    });

    for (const c of golden.cases) {
      describe(`case ${c.name}`, () => {
        it('logits: last_logits_at, last_logsumexp, top10, argmax per position', () => {
          const { logits } = refForward(w, c.ids, optsFor(w, c));
          expect(logits.length).toBe(c.ids.length);
          const last = logits[logits.length - 1];
          for (const [id, value] of Object.entries(c.last_logits_at)) {
            expect(Math.abs(last[Number(id)] - value)).toBeLessThan(LOGIT_TOL);
          }
          expect(Math.abs(logsumexp(last) - c.last_logsumexp)).toBeLessThan(LOGIT_TOL);
          for (const { id, logit } of c.last_logits_top10) expect(Math.abs(last[id] - logit)).toBeLessThan(LOGIT_TOL);
          expectTopIds(last, c.last_logits_top10.map((t) => t.id), LOGIT_TOL, 'last_logits_top10');
          c.argmax_per_position.forEach((gold, p) => expectTopIds(logits[p], [gold], LOGIT_TOL, `argmax at pos ${p}`));
        });

        it('logit lens top-5 per layer and position', () => {
          const lens = refLens(w, c.ids, optsFor(w, c));
          expect(lens.length).toBe(w.config.nLayer + 1);
          expect(c.lens.length).toBe(w.config.nLayer + 1);
          for (const gl of c.lens) {
            const layer = lens[gl.layer];
            expect(layer.length).toBe(c.ids.length);
            gl.positions.forEach((gp, p) => {
              const lp = layer[p];
              const what = `lens layer ${gl.layer} pos ${p}`;
              expectTopIds(lp, gp.top.map((t) => t.id), LOGIT_TOL, what);
              const ours = sortedIds(lp, gp.top.length);
              gp.top.forEach((t, r) => {
                expect(Math.abs(Math.exp(lp[t.id]) - t.prob)).toBeLessThan(PROB_TOL);
                expect(Math.abs(Math.exp(lp[ours[r]]) - t.prob)).toBeLessThan(PROB_TOL);
              });
            });
          }
          // the last lens layer is the model's own output
          const { logits } = refForward(w, c.ids, optsFor(w, c));
          const last = lens[w.config.nLayer];
          expect(maxAbsDiff(last[last.length - 1], logSoftmax(logits[logits.length - 1]))).toBeLessThan(1e-9);
        });

        it('greedy and greedy with repetition penalty 2', () => {
          expect(refGreedy(w, c.ids, c.greedy.length, optsFor(w, c))).toEqual(c.greedy);
          expect(refGreedy(w, c.ids, c.greedy_rep2.length, { ...optsFor(w, c), repetitionPenalty: 2 })).toEqual(c.greedy_rep2);
        });
      });
    }
  });
}

describe('reference GPT-2 internal consistency (random model)', () => {
  const cfg: RefConfig = { nLayer: 3, nHead: 4, dModel: 64, nCtx: 32, vocabSize: 50257, eps: 1e-5 };
  const w = randomRefWeights(cfg, 1234);
  const ids = [464, 3139, 286, 4881, 318, 6342, 13];
  const seq = ids.length;
  const d = cfg.dModel;
  const dHead = d / cfg.nHead;

  it('runs a forward at vocab 50257, d_model 64 in well under a second', () => {
    refForward(w, ids); // warm up
    const t0 = performance.now();
    refForward(w, ids);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('caches every TransformerLens hook with the right shapes', () => {
    const { cache, logits } = refForward(w, ids);
    const expected: Record<string, number[]> = {
      hook_embed: [seq, d],
      hook_pos_embed: [seq, d],
      'ln_final.hook_scale': [seq, 1],
      'ln_final.hook_normalized': [seq, d],
      hook_logits: [seq, cfg.vocabSize],
    };
    for (let i = 0; i < cfg.nLayer; i++) {
      const b = `blocks.${i}.`;
      Object.assign(expected, {
        [`${b}hook_resid_pre`]: [seq, d],
        [`${b}ln1.hook_scale`]: [seq, 1],
        [`${b}ln1.hook_normalized`]: [seq, d],
        [`${b}attn.hook_q`]: [seq, cfg.nHead, dHead],
        [`${b}attn.hook_k`]: [seq, cfg.nHead, dHead],
        [`${b}attn.hook_v`]: [seq, cfg.nHead, dHead],
        [`${b}attn.hook_attn_scores`]: [cfg.nHead, seq, seq],
        [`${b}attn.hook_pattern`]: [cfg.nHead, seq, seq],
        [`${b}attn.hook_z`]: [seq, cfg.nHead, dHead],
        [`${b}attn.hook_result`]: [seq, cfg.nHead, d],
        [`${b}hook_attn_out`]: [seq, d],
        [`${b}hook_resid_mid`]: [seq, d],
        [`${b}ln2.hook_scale`]: [seq, 1],
        [`${b}ln2.hook_normalized`]: [seq, d],
        [`${b}mlp.hook_pre`]: [seq, 4 * d],
        [`${b}mlp.hook_post`]: [seq, 4 * d],
        [`${b}hook_mlp_out`]: [seq, d],
        [`${b}hook_resid_post`]: [seq, d],
      });
    }
    expect([...cache.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, shape] of Object.entries(expected)) {
      const a = cache.get(name)!;
      expect({ name, shape: a.shape }).toEqual({ name, shape });
      expect(a.data.length).toBe(shape.reduce((x, y) => x * y, 1));
    }
    expect(maxAbsDiff(cache.get('hook_logits')!.data, logits.flat())).toBe(0);
    // residual stream bookkeeping
    const e = cache.get('hook_embed')!.data;
    const pe = cache.get('hook_pos_embed')!.data;
    expect(maxAbsDiff(cache.get('blocks.0.hook_resid_pre')!.data, e.map((v, i) => v + pe[i]))).toBe(0);
    for (let i = 0; i < cfg.nLayer; i++) {
      const g = (n: string) => cache.get(`blocks.${i}.${n}`)!.data;
      expect(maxAbsDiff(g('hook_resid_mid'), g('hook_resid_pre').map((v, k) => v + g('hook_attn_out')[k]))).toBe(0);
      expect(maxAbsDiff(g('hook_resid_post'), g('hook_resid_mid').map((v, k) => v + g('hook_mlp_out')[k]))).toBe(0);
      if (i + 1 < cfg.nLayer) expect(maxAbsDiff(cache.get(`blocks.${i + 1}.hook_resid_pre`)!.data, g('hook_resid_post'))).toBe(0);
    }
  });

  it('last hook_resid_post -> LN_f -> unembed equals the logits', () => {
    const { cache, logits } = refForward(w, ids);
    const x = cache.get(`blocks.${cfg.nLayer - 1}.hook_resid_post`)!.data;
    const lw = w.get('ln_f.weight');
    const lb = w.get('ln_f.bias');
    const wte = w.get('wte.weight');
    for (const p of [0, seq - 1]) {
      const row = Array.from(x.subarray(p * d, (p + 1) * d));
      const mean = row.reduce((a, b) => a + b, 0) / d;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
      const n = row.map((v, i) => ((v - mean) / Math.sqrt(variance + cfg.eps)) * lw[i] + lb[i]);
      for (const t of [0, 11, 262, 50256, ...sortedIds(logits[p], 5)]) {
        let s = 0;
        for (let i = 0; i < d; i++) s += n[i] * wte[t * d + i];
        expect(Math.abs(s - logits[p][t])).toBeLessThan(1e-10);
      }
    }
  });

  it("LayerNorm hooks have TransformerLens' meaning: scale = sqrt(var + eps), normalized = (x - mean) / scale before w, b", () => {
    const { cache } = refForward(w, ids);
    const qkvW = w.get('h.0.attn.c_attn.weight');
    const qkvB = w.get('h.0.attn.c_attn.bias');
    for (const [ln, input] of [
      ['blocks.0.ln1', 'blocks.0.hook_resid_pre'],
      ['blocks.2.ln2', 'blocks.2.hook_resid_mid'],
      ['ln_final', `blocks.${cfg.nLayer - 1}.hook_resid_post`],
    ]) {
      const x = cache.get(input)!.data;
      const scale = cache.get(`${ln}.hook_scale`)!.data;
      const normalized = cache.get(`${ln}.hook_normalized`)!.data;
      expect(scale.length).toBe(seq);
      for (let p = 0; p < seq; p++) {
        const row = Array.from(x.subarray(p * d, (p + 1) * d));
        const mean = row.reduce((a, b) => a + b, 0) / d;
        const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / d;
        expect(Math.abs(scale[p] - Math.sqrt(variance + cfg.eps))).toBeLessThan(1e-12);
        const n = normalized.subarray(p * d, (p + 1) * d);
        expect(maxAbsDiff(n, row.map((v) => (v - mean) / Math.sqrt(variance + cfg.eps)))).toBeLessThan(1e-12);
        // mean 0, variance 1 - eps/scale² (the eps inside the root), whatever w and b are
        expect(Math.abs(n.reduce((a, b) => a + b, 0) / d)).toBeLessThan(1e-12);
        expect(Math.abs(n.reduce((a, b) => a + b * b, 0) / d - variance / (variance + cfg.eps))).toBeLessThan(1e-12);
      }
      expect(maxAbsDiff(normalized, x)).toBeGreaterThan(0.1);
    }
    // ln1's output (normalized * w + b) is what the attention reads: q = (n * w + b) @ W_q + b_q
    const n0 = cache.get('blocks.0.ln1.hook_normalized')!.data;
    const lw = w.get('h.0.ln_1.weight');
    const lb = w.get('h.0.ln_1.bias');
    const q = cache.get('blocks.0.attn.hook_q')!.data;
    for (const [p, o] of [[0, 0], [seq - 1, d - 1], [3, 5]]) {
      let s = qkvB[o];
      for (let i = 0; i < d; i++) s += (n0[p * d + i] * lw[i] + lb[i]) * qkvW[i * 3 * d + o];
      expect(Math.abs(s - q[p * d + o])).toBeLessThan(1e-10);
    }
  });

  it('lnHooks replace hook_scale / hook_normalized and what follows sees the replacement', () => {
    const base = refForward(w, ids);
    const doubled = refForward(w, ids, { lnHooks: { 'ln_final.hook_normalized': (v) => v.map((x) => 2 * x) } });
    const nf = base.cache.get('ln_final.hook_normalized')!.data;
    expect(maxAbsDiff(doubled.cache.get('ln_final.hook_normalized')!.data, nf.map((x) => 2 * x))).toBe(0);
    const lw = w.get('ln_f.weight');
    const lb = w.get('ln_f.bias');
    const wte = w.get('wte.weight');
    for (const [p, t] of [[0, 0], [seq - 1, 262], [2, 50256]]) {
      let s = 0;
      for (let i = 0; i < d; i++) s += (2 * nf[p * d + i] * lw[i] + lb[i]) * wte[t * d + i];
      expect(Math.abs(s - doubled.logits[p][t])).toBeLessThan(1e-10);
    }
    // halving ln1's scale doubles its normalized output (normalized is computed from the hooked scale)
    const half = refForward(w, ids, { lnHooks: { 'blocks.1.ln1.hook_scale': (v) => v.map((x) => x / 2) } });
    expect(maxAbsDiff(half.cache.get('blocks.1.ln1.hook_normalized')!.data, base.cache.get('blocks.1.ln1.hook_normalized')!.data.map((x) => 2 * x))).toBeLessThan(1e-12);
    expect(maxAbsDiff(half.cache.get('blocks.0.hook_resid_post')!.data, base.cache.get('blocks.0.hook_resid_post')!.data)).toBe(0);
    expect(maxAbsDiff(half.logits.flat(), base.logits.flat())).toBeGreaterThan(1e-3);
    expect(() => refForward(w, ids, { lnHooks: { 'blocks.0.ln1.hook_nope': (v) => v } })).toThrow(/hook_nope/);
    expect(() => refForward(w, ids, { lnHooks: { 'ln_final.hook_scale': (v) => v.subarray(1) } })).toThrow(/values/);
  });

  it('attention: causal scores are -Infinity above the diagonal, pattern rows sum to 1', () => {
    const { cache } = refForward(w, ids);
    for (let l = 0; l < cfg.nLayer; l++) {
      const scores = cache.get(`blocks.${l}.attn.hook_attn_scores`)!.data;
      const pattern = cache.get(`blocks.${l}.attn.hook_pattern`)!.data;
      for (let h = 0; h < cfg.nHead; h++) {
        for (let i = 0; i < seq; i++) {
          let sum = 0;
          for (let j = 0; j < seq; j++) {
            const k = (h * seq + i) * seq + j;
            if (j > i) {
              expect(scores[k]).toBe(-Infinity);
              expect(pattern[k]).toBe(0);
            } else {
              expect(Number.isFinite(scores[k])).toBe(true);
              expect(pattern[k]).toBeGreaterThan(0);
            }
            sum += pattern[k];
          }
          expect(Math.abs(sum - 1)).toBeLessThan(1e-12);
        }
      }
      // the first query position attends only to itself
      expect(pattern[0]).toBe(1);
    }
  });

  it('overrides equal to the natural values leave the logits unchanged; a real override only affects later positions', () => {
    const base = refForward(w, ids);
    const resid0 = base.cache.get('blocks.0.hook_resid_pre')!.data;
    const resid1 = base.cache.get('blocks.1.hook_resid_pre')!.data;
    const natural = refForward(w, ids, {
      residPre: [
        { layer: 0, pos: 2, vector: resid0.subarray(2 * d, 3 * d) },
        { layer: 1, pos: 4, vector: resid1.subarray(4 * d, 5 * d) },
      ],
      embeds: [{ pos: 3, vector: w.get('wte.weight').subarray(ids[3] * d, (ids[3] + 1) * d) }],
    });
    expect(maxAbsDiff(natural.logits.flat(), base.logits.flat())).toBe(0);

    const vector = Array.from({ length: d }, (_, i) => Math.sin(i));
    const changed = refForward(w, ids, { residPre: [{ layer: 1, pos: 3, vector }] });
    for (let p = 0; p < seq; p++) {
      const diff = maxAbsDiff(changed.logits[p], base.logits[p]);
      if (p < 3) expect(diff).toBe(0);
      else expect(diff).toBeGreaterThan(1e-6);
    }
    // the override is what the cache shows as resid_pre; earlier layers are untouched
    expect(Array.from(changed.cache.get('blocks.1.hook_resid_pre')!.data.subarray(3 * d, 4 * d))).toEqual(vector);
    expect(maxAbsDiff(changed.cache.get('blocks.0.hook_resid_post')!.data, base.cache.get('blocks.0.hook_resid_post')!.data)).toBe(0);

    // an embeds override replaces hook_embed but keeps the position embedding
    const emb = refForward(w, ids, { embeds: [{ pos: 1, vector }] });
    expect(Array.from(emb.cache.get('hook_embed')!.data.subarray(d, 2 * d))).toEqual(vector);
    const pe = w.get('wpe.weight');
    const r0 = emb.cache.get('blocks.0.hook_resid_pre')!.data;
    for (let i = 0; i < d; i++) expect(r0[d + i]).toBe(vector[i] + pe[d + i]);
  });

  it('rejects bad inputs', () => {
    expect(() => refForward(w, [])).toThrow();
    expect(() => refForward(w, [50257])).toThrow();
    expect(() => refForward(w, new Array(cfg.nCtx + 1).fill(0))).toThrow();
    expect(() => refForward(w, ids, { embeds: [{ pos: seq, vector: new Array(d).fill(0) }] })).toThrow();
    expect(() => refForward(w, ids, { embeds: [{ pos: 0, vector: new Array(d - 1).fill(0) }] })).toThrow();
    expect(() => refForward(w, ids, { residPre: [{ layer: cfg.nLayer, pos: 0, vector: new Array(d).fill(0) }] })).toThrow();
  });

  it('refGreedy recomputes with overrides at prompt positions every step', () => {
    const vector = Array.from({ length: d }, (_, i) => Math.cos(i));
    const opts: RefOptions = { embeds: [{ pos: 1, vector }] };
    const out = refGreedy(w, ids.slice(0, 3), 3, opts);
    expect(out.length).toBe(3);
    // step by step by hand
    const seqIds = ids.slice(0, 3);
    for (const next of out) {
      const { logits } = refForward(w, seqIds, opts);
      expect(sortedIds(logits[logits.length - 1], 1)[0]).toBe(next);
      seqIds.push(next);
    }
    expect(refGreedy(w, ids, 0)).toEqual([]);
  });

  it('logit lens layer 0 is ln_f + unembed of the embeddings', () => {
    const lens = refLens(w, ids);
    expect(lens.length).toBe(cfg.nLayer + 1);
    for (const layer of lens) for (const row of layer) expect(Math.abs(logsumexp(row))).toBeLessThan(1e-9);
  });

  it('random weights are deterministic Float32Array with complete tensor listing', () => {
    const again = randomRefWeights(cfg, 1234);
    const other = randomRefWeights(cfg, 1235);
    const list = w.tensors();
    expect(list.length).toBe(4 + 12 * cfg.nLayer);
    for (const t of list) {
      expect(t.data).toBeInstanceOf(Float32Array);
      expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
      expect(maxAbsDiff(again.get(t.name), t.data)).toBe(0); // toEqual on 3M-element typed arrays is very slow
    }
    expect(maxAbsDiff(other.get('wte.weight'), w.get('wte.weight'))).toBeGreaterThan(0.1);
    const wte = w.get('wte.weight');
    const std = Math.sqrt(wte.reduce((a, b) => a + b * b, 0) / wte.length);
    expect(std).toBeGreaterThan(0.27);
    expect(std).toBeLessThan(0.33);
  });
});

describe('applyRepetitionPenalty and logSoftmax', () => {
  it('HF rule: each distinct seen token once, negative multiplied, positive divided', () => {
    const logits = [2, -1, 0.5, -3, 4];
    expect(applyRepetitionPenalty(logits, [0, 1, 1, 1, 3, 0], 2)).toEqual([1, -2, 0.5, -6, 4]);
    expect(logits).toEqual([2, -1, 0.5, -3, 4]); // not mutated
    expect(applyRepetitionPenalty(logits, new Set([4, 2]), 1.5)).toEqual([2, -1, 0.5 / 1.5, -3, 4 / 1.5]);
    expect(applyRepetitionPenalty([0, 1], [0], 2)).toEqual([0, 1]);
    expect(applyRepetitionPenalty(logits, [], 2)).toEqual(logits);
  });

  it('logSoftmax normalises and is shift invariant', () => {
    const v = [1, 2, 3, 1000];
    const ls = logSoftmax(v);
    expect(Math.abs(logsumexp(ls))).toBeLessThan(1e-12);
    expect(ls[3]).toBeCloseTo(0, 12);
    const a = logSoftmax([0.1, -0.2, 0.3]);
    const b = logSoftmax([100.1, 99.8, 100.3]);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-12);
  });
});

describe('safetensors-mini', () => {
  function writeSafetensors(file: string, tensors: Array<{ name: string; dtype: string; shape: number[]; bytes: Uint8Array }>, metadata?: Record<string, string>): void {
    const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
    let offset = 0;
    for (const t of tensors) {
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
      offset += t.bytes.byteLength;
    }
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(file, Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength))]));
  }

  it('decodes f16 and bf16 bit patterns', () => {
    expect(f16ToNumber(0x3c00)).toBe(1);
    expect(f16ToNumber(0xc000)).toBe(-2);
    expect(f16ToNumber(0x7bff)).toBe(65504);
    expect(f16ToNumber(0x0001)).toBe(2 ** -24);
    expect(f16ToNumber(0x7c00)).toBe(Infinity);
    expect(f16ToNumber(0x3555)).toBeCloseTo(1 / 3, 3);
    expect(bf16ToNumber(0x3f80)).toBe(1);
    expect(bf16ToNumber(0xc040)).toBe(-3);
    expect(bf16ToNumber(0x3eab)).toBe(0.333984375);
  });

  it('round-trips a random model written as F32 with a transformer. prefix, and reads F16/BF16', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'ref-st-'));
    try {
      const cfg: RefConfig = { nLayer: 2, nHead: 2, dModel: 8, nCtx: 16, vocabSize: 50, eps: 1e-5 };
      const rw = randomRefWeights(cfg, 7);
      writeFileSync(
        path.join(tmp, 'config.json'),
        JSON.stringify({ n_layer: 2, n_head: 2, n_embd: 8, n_ctx: 16, vocab_size: 50 }),
      );
      writeSafetensors(
        path.join(tmp, 'model.safetensors'),
        rw.tensors().map((t) => ({ name: `transformer.${t.name}`, dtype: 'F32', shape: t.shape, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })),
        { format: 'pt' },
      );
      const read = readSafetensorsDir(tmp);
      expect(read.config).toEqual(cfg);
      expect(read.metadata).toEqual({ format: 'pt' });
      for (const t of rw.tensors()) expect(Array.from(read.get(t.name))).toEqual(Array.from(t.data));
      expect(refForward(read, [1, 2, 3]).logits).toEqual(refForward(rw, [1, 2, 3]).logits);

      const dir2 = mkdtempSync(path.join(tmp, 'halfs-'));
      writeFileSync(path.join(dir2, 'config.json'), JSON.stringify({ n_layer: 1, n_head: 1, n_embd: 2, n_positions: 4, vocab_size: 3, layer_norm_epsilon: 1e-6 }));
      const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800]).buffer);
      const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc040]).buffer);
      writeSafetensors(path.join(dir2, 'model.safetensors'), [
        { name: 'a', dtype: 'F16', shape: [3], bytes: f16 },
        { name: 'transformer.b', dtype: 'BF16', shape: [1, 2], bytes: bf16 },
      ]);
      const r2 = readSafetensorsDir(dir2);
      expect(r2.config).toEqual({ nLayer: 1, nHead: 1, dModel: 2, nCtx: 4, vocabSize: 3, eps: 1e-6 });
      expect(Array.from(r2.get('a'))).toEqual([1, -2, 0.5]);
      expect(Array.from(r2.get('b'))).toEqual([1, -3]);
      expect(r2.shape('b')).toEqual([1, 2]);
      expect(() => r2.get('c')).toThrow();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
