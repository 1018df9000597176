/**
 * generate() against the float64 reference: left-padded multi-prompt batches, overrides and
 * injections during generation, repetition penalty, min length, EOS, stop strings, streaming,
 * and that batching never changes a row's result.
 */
import { generate, generateStream, gpt2, tf, type GPT2, type TokenEvent } from '@sp/core';
import { expectGreedyPath, randomModelDir, refFfKey } from './helpers.js';
import type { RandomRefWeights } from '../reference/random-model.js';

let model: GPT2;
let w: RandomRefWeights;
const backend = process.env.SP_BACKEND ?? 'wasm';

// Prompts of different lengths (3, 7, 11 tokens) so a batch needs left padding.
const P = [
  [464, 3139, 286],
  [40, 588, 257, 3290, 290, 257, 3797],
  [464, 3381, 366, 0, 1, 1724, 286, 428, 1573, 318, 257],
];

beforeAll(async () => {
  const r = randomModelDir({ nLayer: 2, nHead: 3, dModel: 24 }, 11);
  w = r.w;
  model = await gpt2(r.dir, { backend });
});
afterAll(() => model.dispose());

describe('greedy vs the float64 reference', () => {
  test('single prompts: every token is the reference argmax (and not one constant token)', async () => {
    for (const ids of P) {
      const r = await generate(model, ids, { maxNewTokens: 10, eosTokenId: null });
      expect(r.newTokens[0]).toHaveLength(10);
      expect(r.sequences[0]).toEqual([...ids, ...r.newTokens[0]]);
      expect(expectGreedyPath(w, ids, r.newTokens[0])).toBeGreaterThanOrEqual(9);
      expect(new Set(r.newTokens[0]).size).toBeGreaterThan(1);
    }
  });

  test('a left-padded batch of three prompts equals three separate runs and the reference', async () => {
    const batch = await generate(model, P, { maxNewTokens: 10, eosTokenId: null });
    expect(batch.promptLengths).toEqual([3, 7, 11]);
    for (let p = 0; p < P.length; p++) {
      const alone = await generate(model, P[p], { maxNewTokens: 10, eosTokenId: null });
      expect(batch.newTokens[p]).toEqual(alone.newTokens[0]);
      expect(batch.sequences[p]).toEqual([...P[p], ...alone.newTokens[0]]);
      expectGreedyPath(w, P[p], batch.newTokens[p]);
    }
  });

  test('repetition penalty 2 (HF rule, prompt included) in a padded batch', async () => {
    const batch = await generate(model, P, { maxNewTokens: 10, eosTokenId: null, repetitionPenalty: 2 });
    const plain = await generate(model, P, { maxNewTokens: 10, eosTokenId: null });
    expect(batch.newTokens).not.toEqual(plain.newTokens); // the penalty has an effect here
    for (let p = 0; p < P.length; p++) {
      expectGreedyPath(w, P[p], batch.newTokens[p], { repetitionPenalty: 2 });
      // The padding (eos ids) is not part of any sequence, so it is never penalised.
      expect(batch.sequences[p].slice(0, P[p].length)).toEqual(P[p]);
    }
  });

  test('embedding override and layer-1 injection per batch row stay in force while generating', async () => {
    const key = refFfKey(w, 1, 5);
    const key2 = refFfKey(w, 0, 17);
    const embeds = [{ pos: 3, vector: key, batch: 2 }, { pos: 1, vector: key2, batch: 0 }];
    const inject = [{ layer: 1, pos: 4, vector: key2, batch: 1 }];
    const r = await generate(model, P, { maxNewTokens: 8, eosTokenId: null, embeds, inject, repetitionPenalty: 2 });
    const plain = await generate(model, P, { maxNewTokens: 8, eosTokenId: null, repetitionPenalty: 2 });
    expectGreedyPath(w, P[0], r.newTokens[0], { embeds: [{ pos: 1, vector: key2 }], repetitionPenalty: 2 });
    expectGreedyPath(w, P[1], r.newTokens[1], { residPre: [{ layer: 1, pos: 4, vector: key2 }], repetitionPenalty: 2 });
    expectGreedyPath(w, P[2], r.newTokens[2], { embeds: [{ pos: 3, vector: key }], repetitionPenalty: 2 });
    for (let p = 0; p < 3; p++) expect(r.newTokens[p]).not.toEqual(plain.newTokens[p]);
    // Alone, each row gives the same tokens as in the batch.
    const alone = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null, inject: [{ layer: 1, pos: 4, vector: key2 }], repetitionPenalty: 2 });
    expect(alone.newTokens[0]).toEqual(r.newTokens[1]);
  });

  test('an override without batch applies to every prompt at its own position', async () => {
    const key = refFfKey(w, 1, 9);
    const r = await generate(model, P, { maxNewTokens: 6, eosTokenId: null, embeds: [{ pos: 2, vector: key }] });
    for (let p = 0; p < 3; p++) expectGreedyPath(w, P[p], r.newTokens[p], { embeds: [{ pos: 2, vector: key }] });
  });
});

describe('EOS, min length, stop strings', () => {
  let free: number[]; // greedy continuation of P[1] without EOS
  beforeAll(async () => {
    free = (await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null })).newTokens[0];
  });

  test('EOS stops a row and is kept; other rows go on', async () => {
    const eos = free[2];
    const r = await generate(model, [P[0], P[1]], { maxNewTokens: 8, eosTokenId: eos });
    const cut = free.indexOf(eos) + 1;
    expect(r.newTokens[1]).toEqual(free.slice(0, cut));
    const other = await generate(model, P[0], { maxNewTokens: 8, eosTokenId: eos });
    expect(r.newTokens[0]).toEqual(other.newTokens[0]);
  });

  test('minNewTokens suppresses EOS for the first n steps (checked against the reference)', async () => {
    const eos = free[0];
    const r = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: eos, minNewTokens: 3 });
    expect(r.newTokens[0].slice(0, 3)).not.toContain(eos);
    expectGreedyPath(w, P[1], r.newTokens[0], { suppress: (i) => (i < 3 ? [eos] : []) });
    const stopAt = r.newTokens[0].indexOf(eos);
    if (stopAt >= 0) expect(r.newTokens[0]).toHaveLength(stopAt + 1);
    const none = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: eos });
    expect(none.newTokens[0]).toEqual([eos]);
  });

  test('minLength counts the prompt (per row, without padding)', async () => {
    const eos = free[0];
    const r = await generate(model, [P[0], P[1]], { maxNewTokens: 6, eosTokenId: eos, minLength: 9 });
    // P[1] has 7 tokens: EOS is banned for its first 2 new tokens.
    expectGreedyPath(w, P[1], r.newTokens[1], { suppress: (_, seq) => (seq.length < 9 ? [eos] : []) });
    expect(r.newTokens[1].slice(0, 2)).not.toContain(eos);
    // P[0] has 3 tokens: banned for 6 new tokens, i.e. all of them.
    expect(r.newTokens[0]).not.toContain(eos);
    expectGreedyPath(w, P[0], r.newTokens[0], { suppress: (_, seq) => (seq.length < 9 ? [eos] : []) });
  });

  test('stop strings end a row once its new text contains them; the completing token is kept', async () => {
    const text = (ids: number[]) => model.decode(ids);
    const stop = text([free[3]]);
    const r = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null, stopStrings: [stop] });
    const firstHit = free.findIndex((_, i) => text(free.slice(0, i + 1)).includes(stop));
    expect(r.newTokens[0]).toEqual(free.slice(0, firstHit + 1));
    expect(r.texts[0].includes(stop)).toBe(true);
    // A stop string spanning two tokens.
    const span = text(free.slice(4, 6));
    const r2 = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null, stopStrings: ['never-there', span] });
    const hit2 = free.findIndex((_, i) => text(free.slice(0, i + 1)).includes(span));
    expect(r2.newTokens[0]).toEqual(free.slice(0, hit2 + 1));
  });
});

describe('sampling reproducibility and batching', () => {
  const opts = { maxNewTokens: 8, doSample: true, temperature: 1.5, topK: 0, eosTokenId: null, seed: 42 } as const;

  test('same seed, same samples run to run; different seed, different samples', async () => {
    const a = await generate(model, P[1], { ...opts, numReturnSequences: 3 });
    const b = await generate(model, P[1], { ...opts, numReturnSequences: 3 });
    const c = await generate(model, P[1], { ...opts, numReturnSequences: 3, seed: 43 });
    expect(a.newTokens).toEqual(b.newTokens);
    expect(c.newTokens).not.toEqual(a.newTokens);
    expect(new Set(a.newTokens.map((t) => t.join())).size).toBe(3); // samples differ from each other
  });

  test('sample j of a prompt is the same alone, with more samples, and in a multi-prompt batch', async () => {
    const one = await generate(model, P[1], { ...opts, numReturnSequences: 1 });
    const three = await generate(model, P[1], { ...opts, numReturnSequences: 3 });
    const batch = await generate(model, P, { ...opts, numReturnSequences: 3 });
    expect(three.newTokens[0]).toEqual(one.newTokens[0]);
    expect(batch.newTokens.slice(3, 6)).toEqual(three.newTokens);
    const p2 = await generate(model, P[2], { ...opts, numReturnSequences: 3 });
    expect(batch.newTokens.slice(6, 9)).toEqual(p2.newTokens);
    expect(batch.promptLengths).toEqual([3, 3, 3, 7, 7, 7, 11, 11, 11]);
  });
});

describe('streaming', () => {
  test('generateStream yields every token in order, then the result; onToken sees the same', async () => {
    const seen: TokenEvent[] = [];
    const events: TokenEvent[] = [];
    let result;
    for await (const ev of generateStream(model, [P[0], P[2]], { maxNewTokens: 5, eosTokenId: null, onToken: (e) => seen.push(e) })) {
      if ('result' in ev) result = ev.result;
      else events.push(ev);
    }
    expect(events).toEqual(seen);
    expect(events).toHaveLength(10);
    for (const row of [0, 1]) {
      const mine = events.filter((e) => e.sequence === row);
      expect(mine.map((e) => e.tokenId)).toEqual(result!.newTokens[row]);
      expect(mine.map((e) => e.step)).toEqual([0, 1, 2, 3, 4]);
      expect(mine.map((e) => e.text).join('')).toBe(result!.texts[row]);
      expect(mine.at(-1)!.done).toBe(true);
    }
  });
});

describe('validation and memory', () => {
  test('bad options are one-line SpErrors', async () => {
    const cases: Array<[object, RegExp]> = [
      [{ doSample: true, temperature: 0 }, /temperature must be > 0/],
      [{ topP: 0 }, /topP/],
      [{ topK: -1 }, /topK/],
      [{ repetitionPenalty: 0 }, /repetitionPenalty/],
      [{ numReturnSequences: 2 }, /needs doSample/],
      [{ maxNewTokens: 62 }, /context/],
      [{ embeds: [{ pos: 5, vector: new Float32Array(24) }] }, /out of range/],
      [{ embeds: [{ pos: 0, vector: new Float32Array(5) }] }, /width 5/],
      [{ eosTokenId: 60000 }, /out of range/],
      [{ virtualPositions: [7] }, /virtual position 7 is out of range/],
      [{ virtualPositions: [[0], [1]] }, /2 lists for 1 prompts/],
    ];
    for (const [o, re] of cases) {
      const err = await generate(model, P[0], o).catch((e) => e);
      expect(err.name).toBe('SpError');
      expect(err.message).toMatch(re);
      expect(err.message).not.toContain('\n');
    }
  });

  test('no tensors leak across batched, sampled, streamed generation', async () => {
    await generate(model, P, { maxNewTokens: 3 });
    const before = tf.memory().numTensors;
    await generate(model, P, { maxNewTokens: 4, doSample: true, numReturnSequences: 2, seed: 1, stopStrings: ['x'] });
    await generate(model, P, { maxNewTokens: 4, embeds: [{ pos: 1, vector: refFfKey(w, 0, 0) }] });
    await generate(model, P[0], { maxNewTokens: 0 });
    const it = generateStream(model, P, { maxNewTokens: 6 });
    await it.next();
    await it.return(undefined); // a consumer that stops early
    expect(tf.memory().numTensors).toBe(before);
  });
});
