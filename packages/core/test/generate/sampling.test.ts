/**
 * Logits processing and sampling: the HF repetition-penalty rule on hand-made logits, the
 * top-k / top-p distribution against an independent HF-style implementation, and statistical
 * tests (fixed seeds, stated tolerances) that the sampler draws from exactly that distribution —
 * on its own and end to end through the model against the float64 reference.
 */
import { applyRepetitionPenalty, generate, gpt2, sampleFrom, samplingDistribution, seededRandom, type GPT2 } from '@sp/core';
import { applyRepetitionPenalty as refPenalty, refForward } from '../reference/gpt2-ref.js';
import { chi2Critical999, hfDistribution, randomModelDir } from './helpers.js';
import type { RandomRefWeights } from '../reference/random-model.js';

describe('repetition penalty (HF rule)', () => {
  test('hand-made logits: positive divided, negative multiplied, zero unchanged, each token once', () => {
    const logits = Float64Array.from([2, -1, 0, 3.5, -0.25, 1]);
    applyRepetitionPenalty(logits, [0, 1, 2, 4, 0, 0, 1], 2);
    expect(Array.from(logits)).toEqual([1, -2, 0, 3.5, -0.5, 1]);
    const l2 = Float64Array.from([2, -1, 0, 3.5]);
    applyRepetitionPenalty(l2, [3, 1], 1.3);
    expect(l2[3]).toBeCloseTo(3.5 / 1.3, 15);
    expect(l2[1]).toBeCloseTo(-1.3, 15);
    expect(Array.from(l2.slice(0, 1))).toEqual([2]);
  });

  test('agrees with the reference implementation on random logits, penalties < 1 included', () => {
    const rnd = seededRandom(5);
    for (const penalty of [0.5, 1, 1.2, 2, 10]) {
      const v = Array.from({ length: 200 }, () => (rnd() - 0.5) * 20);
      const seen = Array.from({ length: 80 }, () => Math.floor(rnd() * 200));
      const ours = Float64Array.from(v);
      applyRepetitionPenalty(ours, seen, penalty);
      expect(Array.from(ours)).toEqual(refPenalty(v, seen, penalty));
    }
  });
});

describe('samplingDistribution vs an independent HF-style implementation', () => {
  const rnd = seededRandom(9);
  const logits = Array.from({ length: 500 }, () => (rnd() - 0.5) * 12);
  const configs: Array<[number, number, number]> = [
    [1, 0, 1],
    [0.5, 50, 1],
    [0.7, 0, 0.9],
    [1.3, 20, 0.5],
    [0.5, 1, 1],
    [2, 0, 0.05],
  ];
  test.each(configs)('T=%p topK=%p topP=%p', (T, k, p) => {
    const ours = samplingDistribution(Float64Array.from(logits), { temperature: T, topK: k, topP: p });
    const ref = hfDistribution(logits, T, k, p);
    expect(new Set(ours.ids)).toEqual(new Set(ref.keys()));
    ours.ids.forEach((id, r) => expect(Math.abs(ours.probs[r] - ref.get(id)!)).toBeLessThan(1e-12));
    expect(ours.probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  test('top-k keeps every token tied with the k-th (as torch.topk + "<" does)', () => {
    const v = Float64Array.from([5, 3, 3, 3, 1]);
    expect(samplingDistribution(v, { temperature: 1, topK: 2, topP: 1 }).ids).toEqual([0, 1, 2, 3]);
  });

  test('top-p: the smallest top set reaching p, hand computed', () => {
    // softmax of log([0.5, 0.3, 0.15, 0.05]) = [0.5, 0.3, 0.15, 0.05]
    const v = Float64Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    const d = samplingDistribution(v, { temperature: 1, topK: 0, topP: 0.75 });
    expect(d.ids).toEqual([0, 1]);
    expect(d.probs[0]).toBeCloseTo(0.5 / 0.8, 12);
    expect(samplingDistribution(v, { temperature: 1, topK: 0, topP: 0.81 }).ids).toEqual([0, 1, 2]);
    expect(samplingDistribution(v, { temperature: 1, topK: 0, topP: 0.4 }).ids).toEqual([0]);
  });

  test('temperature ≤ 0 is refused', () => {
    expect(() => samplingDistribution(Float64Array.from([1, 2]), { temperature: 0, topK: 0, topP: 1 })).toThrow(/temperature must be > 0/);
  });
});

/** Pearson chi-square of counts vs expected probabilities, lumping cells with expected < 5. */
function chi2(counts: Map<number, number>, probs: Map<number, number>, n: number): { stat: number; df: number } {
  let stat = 0;
  let df = -1;
  let restE = 0;
  let restO = 0;
  for (const [id, p] of probs) {
    const e = p * n;
    const o = counts.get(id) ?? 0;
    if (e < 5) {
      restE += e;
      restO += o;
      continue;
    }
    stat += (o - e) ** 2 / e;
    df++;
  }
  if (restE > 0) {
    stat += (restO - restE) ** 2 / Math.max(restE, 1e-9);
    df++;
  }
  for (const id of counts.keys()) if (!probs.has(id)) throw new Error(`sampled token ${id} has probability 0`);
  return { stat, df };
}

describe('statistics of one sampling step', () => {
  test('sampleFrom + seededRandom draw the given distribution (200k draws, chi-square p > 0.001)', () => {
    const rnd = seededRandom(2024);
    const probs = new Map([[7, 0.4], [3, 0.25], [11, 0.2], [0, 0.1], [5, 0.049], [9, 0.001]]);
    const dist = { ids: [...probs.keys()], probs: [...probs.values()] };
    const counts = new Map<number, number>();
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const id = sampleFrom(dist, rnd());
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    const { stat, df } = chi2(counts, probs, n);
    expect(df).toBe(5);
    expect(stat).toBeLessThan(chi2Critical999(df));
  });

  describe('through the model (random GPT-2, float64 reference distribution)', () => {
    let model: GPT2;
    let w: RandomRefWeights;
    const prompt = [40, 588, 257, 3290, 290];
    beforeAll(async () => {
      const r = randomModelDir({ nLayer: 2, nHead: 3, dModel: 24 }, 3);
      w = r.w;
      model = await gpt2(r.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
    });
    afterAll(() => model.dispose());

    // [temperature, topK, topP, repetitionPenalty]: each keeps between 5 and 40 tokens here.
    const configs: Array<[number, number, number, number]> = [
      [0.5, 12, 1, 1],
      [1, 0, 0.03, 1],
      [0.7, 30, 0.6, 2],
    ];
    test.each(configs)('T=%p topK=%p topP=%p penalty=%p: 3000 first tokens match softmax(logits/T) after filtering', async (T, k, p, pen) => {
      const last = refForward(w, prompt).logits.at(-1)!;
      const expected = hfDistribution(pen === 1 ? last : refPenalty(last, prompt, pen), T, k, p);
      expect(expected.size).toBeGreaterThanOrEqual(5);
      expect(expected.size).toBeLessThanOrEqual(40);
      const counts = new Map<number, number>();
      const perCall = 300;
      let n = 0;
      for (let seed = 0; seed < 10; seed++) {
        const r = await generate(model, prompt, { maxNewTokens: 1, doSample: true, temperature: T, topK: k, topP: p, repetitionPenalty: pen, numReturnSequences: perCall, seed, eosTokenId: null });
        for (const t of r.newTokens) counts.set(t[0], (counts.get(t[0]) ?? 0) + 1);
        n += perCall;
      }
      const { stat, df } = chi2(counts, expected, n);
      expect(df).toBeGreaterThanOrEqual(3);
      expect(stat).toBeLessThan(chi2Critical999(df));
      // And the most likely token's frequency within 4 standard errors.
      const [top, pTop] = [...expected].sort((a, b) => b[1] - a[1])[0];
      expect(Math.abs((counts.get(top) ?? 0) / n - pTop)).toBeLessThan(4 * Math.sqrt((pTop * (1 - pTop)) / n));
    });
  });
});
