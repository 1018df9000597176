/** The tfjs model against golden answers from an independent numpy GPT-2 (packages/core/test/fixtures). */
import { gpt2, generate, tf, type GPT2 } from '@sp/core';
import { engineInfo } from '@sp/core/internals';
import { FIXTURES, fixtureDir, golden } from '../helpers/fixtures.js';
import { ENGINES, withEngine } from '../helpers/engines.js';

describe.each(ENGINES.flatMap((e) => FIXTURES.map((f) => [f, e] as const)))('%s vs numpy golden, engine %s', (name, engine) => {
  const g = golden(name);
  let model: GPT2;
  beforeAll(async () => {
    model = await withEngine(engine, () => gpt2(fixtureDir(name), { backend: process.env.SP_BACKEND ?? 'wasm' }));
    expect(engineInfo(model).engine).toBe(engine);
  });
  afterAll(() => model.dispose());

  test('config and FF key/value read from the file', () => {
    expect(model.config.nLayer).toBe(g.model.n_layer);
    expect(model.config.nHead).toBe(g.model.n_head);
    expect(model.config.dModel).toBe(g.model.d_model);
    const key = model.ffKey(g.ff_key.layer, g.ff_key.index);
    const value = model.ffValue(g.ff_value.layer, g.ff_value.index);
    g.ff_key.first8.forEach((x, i) => expect(key[i]).toBeCloseTo(x, 6));
    g.ff_value.first8.forEach((x, i) => expect(value[i]).toBeCloseTo(x, 6));
  });

  for (const c of g.cases) {
    const embeds = (m: GPT2) => (c.inject ? [{ pos: c.inject[0], vector: m.ffKey(c.inject[1], c.inject[2]) }] : []);

    test(`${c.name}: logits, logsumexp, argmax`, () => {
      const logits = model.forward(c.ids, { embeds: embeds(model) });
      const all = logits.arraySync()[0];
      logits.dispose();
      const last = all[all.length - 1];
      for (const [id, v] of Object.entries(c.last_logits_at)) expect(Math.abs(last[Number(id)] - v)).toBeLessThan(1e-4);
      const max = Math.max(...last);
      const lse = max + Math.log(last.reduce((a, x) => a + Math.exp(x - max), 0));
      expect(Math.abs(lse - c.last_logsumexp)).toBeLessThan(1e-4);
      for (const t of c.last_logits_top10) expect(Math.abs(last[t.id] - t.logit)).toBeLessThan(1e-4);
      const top = c.last_logits_top10[0];
      expect(last.every((x) => x <= top.logit + 1e-4)).toBe(true);
      all.forEach((row, p) => {
        const am = row.indexOf(Math.max(...row));
        expect(Math.abs(row[am] - row[c.argmax_per_position[p]])).toBeLessThan(1e-4);
      });
    });

    test(`${c.name}: greedy and repetition penalty 2.0`, async () => {
      const r = await generate(model, c.ids, { maxNewTokens: c.greedy.length, embeds: embeds(model), eosTokenId: null });
      expect(r.newTokens[0]).toEqual(c.greedy);
      const r2 = await generate(model, c.ids, { maxNewTokens: c.greedy_rep2.length, embeds: embeds(model), eosTokenId: null, repetitionPenalty: 2 });
      expect(r2.newTokens[0]).toEqual(c.greedy_rep2);
    });
  }

  test('no tensors leak across forward + generate', async () => {
    const c = g.cases[0];
    model.forward(c.ids).dispose();
    await generate(model, c.ids, { maxNewTokens: 3 });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      model.forward(c.ids).dispose();
      await generate(model, c.ids, { maxNewTokens: 3, doSample: true, seed: i });
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
