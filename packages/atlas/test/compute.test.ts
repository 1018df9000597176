/**
 * computeUnit on a random model: projections against a float64 reference, the batched probe
 * samples equal to speakingProbe's own for each neuron, the agreement scores by their definitions.
 */
import { gpt2, speakingProbe, type GPT2 } from '@sp/core';
import { agreementScores, computeUnit, distinctWords, resolveSettings, type NeuronRecord } from '@sp/atlas';
import type { RandomRefWeights } from '../../core/test/reference/random-model.js';
import { expectTopList, randomModelDir, refProjection, refVector } from './helpers.js';

const backend = process.env.SP_BACKEND ?? 'wasm';

describe('computeUnit', () => {
  let model: GPT2;
  let w: RandomRefWeights;
  beforeAll(async () => {
    const r = randomModelDir({ nLayer: 2, nHead: 2, dModel: 16, nCtx: 64 }, 31);
    w = r.w;
    model = await gpt2(r.dir, { backend });
  });
  afterAll(() => model.dispose());

  test.each(['key', 'value'] as const)('%s: projections equal the float64 reference; samples equal speakingProbe', async (kind) => {
    const settings = resolveSettings({ kind, samples: 2, maxNewTokens: 6, seed: 5, blockSize: 8 });
    const unit = { layer: 1, start: 3, end: 9 };
    const recs: NeuronRecord[] = await computeUnit(model, settings, unit);
    expect(recs.map((r) => r.index)).toEqual([3, 4, 5, 6, 7, 8]);
    for (const r of recs) {
      expect([r.layer, r.kind]).toEqual([1, kind]);
      const { raw, norm } = refProjection(w, refVector(w, kind, 1, r.index));
      expectTopList(r.projection.top, raw, 50, true);
      expectTopList(r.projection.bottom, raw, 50, false);
      expectTopList(r.projection.top_normalized, norm, 50, true);
      expectTopList(r.projection.bottom_normalized, norm, 50, false);
      expect(r.examples).toEqual([]);
      expect(r.scores.example_projection_overlap).toBeNull();
    }
    // The batched generate is the probe: neuron (L, J)'s samples are speakingProbe's for it.
    for (const r of [recs[0], recs[4]]) {
      const p = await speakingProbe(model, { prompt: settings.prompt, neurons: [`${kind}:1,${r.index}`], seed: 5, samples: 2, maxNewTokens: 6, projectionTop: 0 });
      expect(r.samples).toEqual(p.samples.map((s) => ({ text: s.text, ids: s.new_ids })));
    }
    // Different neurons give different samples (the overrides reach their own rows).
    expect(recs[0].samples).not.toEqual(recs[1].samples);
  });

  test('no probes: samples 0 gives empty samples and a null probe score', async () => {
    const settings = resolveSettings({ samples: 0, blockSize: 4 });
    const [r] = await computeUnit(model, settings, { layer: 0, start: 0, end: 1 });
    expect(r.samples).toEqual([]);
    expect(r.scores.probe_projection_overlap).toBeNull();
  });

  test('bad units are one-line errors', async () => {
    const s = resolveSettings({ samples: 0 });
    await expect(computeUnit(model, s, { layer: 2, start: 0, end: 1 })).rejects.toThrow('layer 2 is out of range [0, 1]');
    await expect(computeUnit(model, s, { layer: 0, start: 5, end: 5 })).rejects.toThrow('not a non-empty range');
    await expect(computeUnit(model, s, { layer: 0, start: 60, end: 65 })).rejects.toThrow('[0, 64)');
  });
});

describe('agreement scores', () => {
  const tok = (id: number, token: string) => ({ id, token, score: 1 });
  const proj = { top: [tok(1, ' Japan'), tok(2, ' tokyo'), tok(3, 'ese'), tok(4, ' ')], bottom: [], top_normalized: [], bottom_normalized: [] };
  const ex = (token_id: number) => ({ doc: 0, position: 0, activation: 1, context: ['x'], center: 0, token_id });

  test('example overlap: fraction of examples whose token is in the top list', () => {
    expect(agreementScores(proj, [], [ex(1), ex(9), ex(3), ex(8)]).example_projection_overlap).toBe(0.5);
    expect(agreementScores(proj, [], null).example_projection_overlap).toBeNull();
  });

  test('probe overlap: distinct words, case- and space-insensitive', () => {
    expect(distinctWords(['JAPAN and Tokyo, japan!', "it's"])).toEqual(['japan', 'and', 'tokyo', "it's"]);
    // words: japan, and, tokyo → japan and tokyo match (' Japan', ' tokyo'): 2/3
    expect(agreementScores(proj, [{ text: 'JAPAN and Tokyo, japan!', ids: [] }], null).probe_projection_overlap).toBeCloseTo(2 / 3, 15);
    expect(agreementScores(proj, [{ text: '...', ids: [] }], null).probe_projection_overlap).toBeNull();
  });
});
