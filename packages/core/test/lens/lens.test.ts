/** Logit lens, rankings, watch and top FF neurons against numpy golden answers and the float64 reference. */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, logitLens, logitLensAsync, rankings, rankingsAsync, rankingsWatch, rankingsWatchAsync, tf, topNeurons, topNeuronsAsync, lensRows, type GPT2, type LensResult } from '@sp/core';
import { FIXTURES, fixtureDir, golden, tmpDir } from '../helpers/fixtures.js';
import { refForward, type RefWeights } from '../reference/gpt2-ref.js';
import { entropy, kl, peakyModel, rankWindow, refLensRows, topIds } from './ref-lens.js';

const backend = process.env.SP_BACKEND ?? 'wasm';

describe.each(FIXTURES)('logitLens on %s vs numpy golden', (name) => {
  const g = golden(name);
  let model: GPT2;
  beforeAll(async () => {
    model = await gpt2(fixtureDir(name), { backend });
  });
  afterAll(() => model.dispose());

  for (const c of g.cases) {
    test(`${c.name}: top-5 ids and probs at every layer and position`, () => {
      const embeds = c.inject ? [{ pos: c.inject[0], vector: model.ffKey(c.inject[1], c.inject[2]) }] : [];
      const r = logitLens(model, c.ids, { topk: 5, embeds });
      expect(r.layers.map((l) => l.layer)).toEqual(c.lens.map((l) => l.layer));
      expect(r.layers).toHaveLength(model.config.nLayer + 1);
      c.lens.forEach((gl, li) => {
        gl.positions.forEach((gp, p) => {
          const mine = r.layers[li].positions[p].top;
          gp.top.forEach((t, j) => {
            // same prob at each rank; ids equal unless two candidates tie within 1e-4 (relative)
            expect(Math.abs(mine[j].prob - t.prob) / t.prob).toBeLessThan(1e-4);
            if (mine[j].id !== t.id) {
              const other = gp.top.find((u) => u.id === mine[j].id);
              expect(other).toBeDefined();
              expect(Math.abs(other!.prob - t.prob) / t.prob).toBeLessThan(1e-4);
            }
          });
        });
      });
    });
  }

  test('logitLensAsync (the webgpu form) returns exactly what logitLens does, also for a batch', async () => {
    const c = g.cases[0];
    expect(await logitLensAsync(model, c.ids, { topk: 3, view: 'all' })).toEqual(logitLens(model, c.ids, { topk: 3, view: 'all' }));
    const batch = [c.ids, c.ids.slice(0, 2)];
    expect(await logitLensAsync(model, batch, { topk: 2, blockElements: 1 })).toEqual(logitLens(model, batch, { topk: 2 }));
  });
});

describe('lens analyses vs the float64 reference (peaked random model)', () => {
  let model: GPT2;
  let w: RefWeights;
  const ids = [464, 3139, 286, 4881, 318, 6342];
  let all: LensResult;
  let ref: Float64Array[][]; // [row][pos][vocab] log-probs, rows of the `all` view
  const tmp = tmpDir('sp-lens-');
  beforeAll(async () => {
    const dir = path.join(tmp, 'peaky');
    w = peakyModel(dir);
    model = await gpt2(dir, { backend });
    all = logitLens(model, ids, { view: 'all', topk: 5 });
    ref = refLensRows(w, ids, lensRows(w.config.nLayer, 'all').map((r) => r.hook));
  });
  afterAll(() => {
    model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const finalRow = () => ref[ref.length - 1];

  test('views: rows, hooks and labels', () => {
    const L = model.config.nLayer;
    expect(all.layers.map((l) => l.label)).toEqual(['embed', '0+attn', '1', '1+attn', '2', '2+attn', '3']);
    expect(all.layers.map((l) => l.layer)).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3]);
    expect(all.layers.map((l) => l.hook)).toEqual(['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_mid', 'blocks.1.hook_resid_post', 'blocks.2.hook_resid_mid', 'blocks.2.hook_resid_post']);
    expect(lensRows(L, 'layers').map((r) => r.stream)).toEqual(['resid_pre', 'resid_post', 'resid_post', 'resid_post']);
    expect(lensRows(L, 'mid').map((r) => r.hook)).toEqual(['blocks.0.hook_resid_mid', 'blocks.1.hook_resid_mid', 'blocks.2.hook_resid_mid']);
    expect(() => lensRows(L, 'bogus' as never)).toThrow('unknown lens view "bogus" (use layers, mid or all)');
  });

  test('top-5 tokens and probabilities at every row (resid_pre, resid_mid, resid_post) and position', () => {
    let checked = 0;
    all.layers.forEach((row, r) => {
      row.positions.forEach((cell, p) => {
        const lp = ref[r][p];
        const want = topIds(lp, 5);
        cell.top.forEach((t, j) => {
          expect(Math.abs(t.prob - Math.exp(lp[t.id])) / Math.exp(lp[t.id])).toBeLessThan(1e-4);
          expect(Math.abs(lp[t.id] - lp[want[j]])).toBeLessThan(1e-4); // same id, or a float32 tie
          expect(t.token).toBe(model.tokenString(t.id));
          checked++;
        });
        expect(cell.max_prob).toBe(cell.top[0].prob);
      });
    });
    expect(checked).toBe(7 * ids.length * 5);
    // a peaked model: the lens is far from uniform somewhere, else this test would prove little
    expect(Math.max(...all.layers.flatMap((l) => l.positions.map((c) => c.max_prob)))).toBeGreaterThan(0.2);
  });

  test('entropy and KL(final ‖ lens) per row and position', () => {
    all.layers.forEach((row, r) => {
      row.positions.forEach((cell, p) => {
        expect(Math.abs(cell.entropy - entropy(ref[r][p]))).toBeLessThan(2e-4);
        const want = kl(finalRow()[p], ref[r][p]);
        expect(Math.abs(cell.kl - want)).toBeLessThan(2e-4 + 5e-5 * want); // float32 sums over 50257 terms
      });
    });
    expect(all.layers[all.layers.length - 1].positions.every((c) => c.kl < 1e-6)).toBe(true);
    expect(all.layers[0].positions.some((c) => c.kl > 0.1)).toBe(true);
  });

  test('layers and mid views are the matching rows of the all view (KL still to the output)', () => {
    const layers = logitLens(model, ids, { topk: 5 });
    const mid = logitLens(model, ids, { view: 'mid', topk: 5 });
    expect(layers.layers.map((l) => l.hook)).toEqual(all.layers.filter((l) => Number.isInteger(l.layer)).map((l) => l.hook));
    for (const v of [layers, mid]) {
      for (const row of v.layers) {
        const same = all.layers.find((l) => l.hook === row.hook)!;
        row.positions.forEach((c, p) => {
          expect(c.top.map((t) => t.id)).toEqual(same.positions[p].top.map((t) => t.id));
          expect(c.kl).toBeCloseTo(same.positions[p].kl, 5);
        });
      }
    }
  });

  test('rankings: next tokens and the predicted last token at every row', () => {
    const r = rankings(model, ids);
    expect(r.positions.map((p) => p.pos)).toEqual([0, 1, 2, 3, 4, 5]);
    const { logits } = refForward(w, ids);
    const lastLogits = logits[ids.length - 1];
    const predicted = lastLogits.indexOf(Math.max(...lastLogits));
    expect(r.positions[5]).toMatchObject({ predicted: true, target: { id: predicted } });
    const rows = lensRows(model.config.nLayer, 'layers');
    const refRows = rows.map((row) => ref[all.layers.findIndex((l) => l.hook === row.hook)]);
    for (const pos of r.positions) {
      expect(pos.target.id).toBe(pos.pos < ids.length - 1 ? ids[pos.pos + 1] : predicted);
      pos.ranks.forEach((rank, ri) => {
        const [lo, hi] = rankWindow(refRows[ri][pos.pos], pos.target.id);
        expect(rank).toBeGreaterThanOrEqual(lo);
        expect(rank).toBeLessThanOrEqual(hi);
        expect(Math.abs(pos.probs[ri] - Math.exp(refRows[ri][pos.pos][pos.target.id]))).toBeLessThan(1e-5 + 1e-4 * pos.probs[ri]);
      });
    }
    expect(r.positions[5].ranks[rows.length - 1]).toBe(1);
    // a generated continuation: only tokens from promptLength on are ranked
    const gen = rankings(model, ids, { promptLength: 4, predictLast: false });
    expect(gen.positions.map((p) => p.pos)).toEqual([3, 4]);
    expect(gen.positions[0].ranks).toEqual(r.positions[3].ranks);
    expect(JSON.parse(JSON.stringify(gen))).toEqual(gen);
  });

  test('rankingsWatch compares candidates at one position', () => {
    const wr = rankingsWatch(model, ids, [' is', ' are', 262], { position: 2 });
    expect(wr.watch).toEqual([{ id: 318, token: ' is' }, { id: 389, token: ' are' }, { id: 262, token: ' the' }]);
    expect(wr.position).toBe(2);
    wr.layers.forEach((row, r) => {
      const lp = ref[all.layers.findIndex((l) => l.hook === row.hook)][2];
      wr.watch.forEach(({ id }, j) => {
        const [lo, hi] = rankWindow(lp, id);
        expect(row.ranks[j]).toBeGreaterThanOrEqual(lo);
        expect(row.ranks[j]).toBeLessThanOrEqual(hi);
        expect(Math.abs(row.probs[j] - Math.exp(lp[id]))).toBeLessThan(1e-5 + 1e-4 * row.probs[j]);
      });
      expect(r).toBeLessThan(model.config.nLayer + 1);
    });
    expect(rankingsWatch(model, ids, [' is']).position).toBe(ids.length - 1); // default: the last position
  });

  test('rankingsAsync, rankingsWatchAsync, topNeuronsAsync (the webgpu forms) return exactly what the sync forms do', async () => {
    expect(await rankingsAsync(model, ids)).toEqual(rankings(model, ids));
    expect(await rankingsAsync(model, [ids, ids.slice(0, 3)], { promptLength: 2 })).toEqual(rankings(model, [ids, ids.slice(0, 3)], { promptLength: 2 }));
    expect(await rankingsWatchAsync(model, ids, [' is', 262], { position: 2 })).toEqual(rankingsWatch(model, ids, [' is', 262], { position: 2 }));
    const before = tf.memory().numTensors;
    expect(await topNeuronsAsync(model, ids, { k: 5, topTokens: 3 })).toEqual(topNeurons(model, ids, { k: 5, topTokens: 3 }));
    expect(tf.memory().numTensors).toBe(before);
  });

  test('topNeurons: m·‖v‖ ranking and E·v top tokens match the reference', () => {
    const pos = 3;
    const r = topNeurons(model, ids, { position: pos, k: 6, topTokens: 4 });
    const { cache } = refForward(w, ids);
    const d = w.config.dModel;
    const m = 4 * d;
    const scores: Array<{ layer: number; index: number; coef: number; norm: number; score: number }> = [];
    for (let l = 0; l < w.config.nLayer; l++) {
      const post = cache.get(`blocks.${l}.mlp.hook_post`)!.data;
      const proj = w.get(`h.${l}.mlp.c_proj.weight`);
      for (let j = 0; j < m; j++) {
        let n2 = 0;
        for (let i = 0; i < d; i++) n2 += proj[j * d + i] ** 2;
        const coef = post[pos * m + j];
        scores.push({ layer: l, index: j, coef, norm: Math.sqrt(n2), score: coef * Math.sqrt(n2) });
      }
    }
    scores.sort((a, b) => Math.abs(b.score) - Math.abs(a.score));
    expect(r.position).toBe(pos);
    expect(r.neurons.map((n) => [n.layer, n.index])).toEqual(scores.slice(0, 6).map((s) => [s.layer, s.index]));
    const wte = w.get('wte.weight');
    r.neurons.forEach((n, i) => {
      expect(n.coefficient).toBeCloseTo(scores[i].coef, 4);
      expect(n.value_norm).toBeCloseTo(scores[i].norm, 4);
      expect(n.score).toBeCloseTo(scores[i].score, 4);
      const v = w.get(`h.${n.layer}.mlp.c_proj.weight`).subarray(n.index * d, (n.index + 1) * d);
      const logits = new Float64Array(w.config.vocabSize);
      for (let t = 0; t < logits.length; t++) for (let e = 0; e < d; e++) logits[t] += wte[t * d + e] * v[e];
      const want = topIds(logits, 4);
      n.top.forEach((t, j) => {
        expect(t.logit).toBeCloseTo(logits[t.id], 4);
        expect(Math.abs(logits[t.id] - logits[want[j]])).toBeLessThan(1e-4);
      });
    });
    const one = topNeurons(model, ids, { layers: [1], k: 3 });
    expect(one.neurons.every((n) => n.layer === 1)).toBe(true);
    expect(one.position).toBe(ids.length - 1);
  });

  test('a ragged batch gives each prompt its own, unpadded result', () => {
    const short = [464, 3139];
    const [a, b] = logitLens(model, [ids, short], { topk: 3 });
    const b1 = logitLens(model, short, { topk: 3 });
    expect(a.ids).toEqual(ids);
    expect(b.ids).toEqual(short);
    expect(b.layers[0].positions).toHaveLength(2);
    b.layers.forEach((row, r) => row.positions.forEach((c, p) => {
      expect(c.top.map((t) => t.id)).toEqual(b1.layers[r].positions[p].top.map((t) => t.id));
      c.top.forEach((t, j) => expect(t.prob).toBeCloseTo(b1.layers[r].positions[p].top[j].prob, 6));
    }));
    const texts = logitLens(model, ['The capital', 'Hello'], { topk: 2 });
    expect(texts.map((t) => t.tokens)).toEqual([['The', ' capital'], ['Hello']]);
    const [ra, rb] = rankings(model, [ids, short]);
    expect(rb.positions.map((p) => p.pos)).toEqual([0, 1]);
    expect(ra.positions).toEqual(rankings(model, ids).positions);
    const [wa, wb] = rankingsWatch(model, [ids, short], [' is']);
    expect([wa.position, wb.position]).toEqual([5, 1]);
    const [na, nb] = topNeurons(model, [ids, short], { k: 2 });
    expect(nb.neurons).toEqual(topNeurons(model, short, { k: 2 }).neurons);
    expect(na.position).toBe(5);
  });

  test('splitting the unembedding into blocks of positions changes nothing', () => {
    const V = model.config.dVocab;
    const small = logitLens(model, ids, { view: 'all', topk: 5, blockElements: 2 * 7 * V }); // 2 positions per block
    expect(small).toEqual(all);
    const r = rankings(model, ids, { blockElements: 7 * V });
    expect(r).toEqual(rankings(model, ids));
    const w = rankingsWatch(model, [ids, ids.slice(0, 3)], [' is', ' are'], { blockElements: 1 });
    expect(w).toEqual(rankingsWatch(model, [ids, ids.slice(0, 3)], [' is', ' are']));
  });

  test('results are plain JSON data', () => {
    expect(JSON.parse(JSON.stringify(all))).toEqual(all);
  });

  test('bad input: one clear line each', () => {
    expect(() => rankingsWatch(model, ids, [' is not'])).toThrow('watch token " is not" is not a single token: it tokenizes as " is" (318) + " not" (407)');
    expect(() => rankingsWatch(model, ids, [''])).toThrow('watch token "" is empty');
    expect(() => rankingsWatch(model, ids, [])).toThrow('no watch tokens');
    expect(() => rankingsWatch(model, ids, [60000])).toThrow('watch token id 60000 is out of range [0, 50256]');
    expect(() => rankingsWatch(model, ids, [' is'], { position: 6 })).toThrow('position 6 is out of range for a 6-token prompt (use 0..5, or -1 for the last)');
    expect(() => topNeurons(model, ids, { position: -7 })).toThrow('position -7 is out of range');
    expect(() => topNeurons(model, ids, { layers: [3] })).toThrow('layer 3 is out of range [0, 2]');
    expect(() => logitLens(model, '')).toThrow('empty prompt: give at least one token');
    expect(() => logitLens(model, [])).toThrow('empty prompt');
    expect(() => logitLens(model, ['a', ''])).toThrow('prompt 1 of the batch is empty');
    expect(() => logitLens(model, ids, { topk: 0 })).toThrow('topk 0 is out of range');
    expect(() => rankings(model, ids, { promptLength: 9 })).toThrow('promptLength 9 is out of range');
    expect(() => rankings(model, [464], { predictLast: false })).toThrow('nothing to rank');
    for (const f of [() => logitLens(model, ''), () => rankingsWatch(model, ids, [' is not'])]) {
      try {
        f();
      } catch (e) {
        expect((e as Error).name).toBe('SpError');
        expect((e as Error).message).not.toContain('\n');
      }
    }
  });

  test('no tensors leak', () => {
    logitLens(model, ids);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      logitLens(model, [ids, [464]], { view: 'all' });
      rankings(model, ids);
      rankingsWatch(model, ids, [' is', ' are']);
      topNeurons(model, ids);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
