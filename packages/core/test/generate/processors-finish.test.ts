/**
 * Generation config, logits processors and finish reasons: GENERATION_DEFAULTS are HF's and the
 * speaking probe's defaults are overrides of them; user `logitsProcessor`s run after the built-in
 * processors and before the sampling warpers (HF's `_get_logits_processor` order), checked by naive
 * recomputation; every row reports why it stopped (eos / stop_string / length).
 */
import {
  GENERATION_DEFAULTS, generate, generateStream, generationMemoryBytes, gpt2, seededRandom, speakingProbe, SPEAKING_PROBE_DEFAULTS,
  type GPT2, type LogitsProcessor, type TokenEvent,
} from '@sp/core';
import { expectGreedyPath, hfDistribution, randomModelDir } from './helpers.js';
import type { RandomRefWeights } from '../reference/random-model.js';

let model: GPT2;
let w: RandomRefWeights;
const backend = process.env.SP_BACKEND ?? 'wasm';
const EOS = 50256;
const P = [
  [464, 3139, 286],
  [40, 588, 257, 3290, 290, 257, 3797],
];

beforeAll(async () => {
  const r = randomModelDir({ nLayer: 2, nHead: 3, dModel: 24 }, 11);
  w = r.w;
  model = await gpt2(r.dir, { backend });
});
afterAll(() => model.dispose());

/** A processor that bans `id` (score −∞) on every row. */
const ban = (id: number): LogitsProcessor => (_, scores) => {
  for (const s of scores) s[id] = -Infinity;
};
/** Forces EOS on the given output rows from step `from` on (every other score −∞). */
const forceEos = (rows: number[], from: number): LogitsProcessor => (_, scores, ctx) =>
  scores.map((s, i) => {
    if (ctx.step < from || !rows.includes(ctx.rows[i])) return s;
    const out = new Float64Array(s.length).fill(-Infinity);
    out[EOS] = 0;
    return out;
  });
/** Records a copy of every row's scores per step (keyed `row:step`), changing nothing. */
function recorder(): { proc: LogitsProcessor; seen: Map<string, { ids: number[]; scores: Float64Array }> } {
  const seen = new Map<string, { ids: number[]; scores: Float64Array }>();
  return {
    seen,
    proc: (ids, scores, ctx) => {
      ctx.rows.forEach((r, i) => seen.set(`${r}:${ctx.step}`, { ids: [...ids[i]], scores: scores[i].slice() }));
    },
  };
}

describe('GenerationConfig defaults, declared once', () => {
  test("GENERATION_DEFAULTS are HF GenerationConfig()'s values; generate uses them", async () => {
    expect(GENERATION_DEFAULTS).toEqual({
      maxNewTokens: 20, doSample: false, temperature: 1, topK: 50, topP: 1, repetitionPenalty: 1,
      minLength: 0, minNewTokens: 0, numReturnSequences: 1, skipSpecialTokens: false, memoryBudget: 512 * 2 ** 20,
    });
    expect(Object.isFrozen(GENERATION_DEFAULTS)).toBe(true);
    const r = await generate(model, P[0], { eosTokenId: null });
    expect(r.newTokens[0]).toHaveLength(20);
    expectGreedyPath(w, P[0], r.newTokens[0]);
  });

  test("the speaking probe's defaults are the article's overrides of them (unchanged values)", () => {
    expect(SPEAKING_PROBE_DEFAULTS).toMatchObject({
      samples: 3, numReturnSequences: 3, doSample: true, temperature: 0.5, repetitionPenalty: 2, maxNewTokens: 50,
      topK: 50, topP: 1, minLength: 0, minNewTokens: 0, skipSpecialTokens: true, projectionTop: 20,
    });
  });
});

describe('logitsProcessor (user processors)', () => {
  let free: number[]; // greedy continuation of P[1]
  beforeAll(async () => {
    free = (await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null })).newTokens[0];
  });

  test('a processor that bans a token changes greedy output exactly as the reference with that token banned', async () => {
    const banned = free[2];
    const r = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null, logitsProcessor: [ban(banned)] });
    expect(r.newTokens[0].slice(0, 2)).toEqual(free.slice(0, 2));
    expect(r.newTokens[0][2]).not.toBe(banned);
    expect(r.newTokens[0]).not.toContain(banned);
    expect(expectGreedyPath(w, P[1], r.newTokens[0], { suppress: () => [banned] })).toBeGreaterThanOrEqual(7);
  });

  test('processors see each row\'s sequence so far (prompt + new, no padding), its output row and the step', async () => {
    const rec = recorder();
    const r = await generate(model, P, { maxNewTokens: 3, eosTokenId: null, logitsProcessor: [rec.proc] });
    expect([...rec.seen.keys()].sort()).toEqual(['0:0', '0:1', '0:2', '1:0', '1:1', '1:2']);
    for (const row of [0, 1]) {
      for (let step = 0; step < 3; step++) {
        const { ids, scores } = rec.seen.get(`${row}:${step}`)!;
        expect(ids).toEqual([...P[row], ...r.newTokens[row].slice(0, step)]);
        expect(scores).toHaveLength(model.config.dVocab);
        // Greedy takes the argmax of what the processors produced.
        let best = 0;
        for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
        expect(r.newTokens[row][step]).toBe(best);
      }
    }
  });

  test('user processors run after the repetition penalty and the min-new-tokens EOS ban (HF order)', async () => {
    const plain = recorder();
    await generate(model, P[1], { maxNewTokens: 1, eosTokenId: null, logitsProcessor: [plain.proc] });
    const after = recorder();
    const eos = free[0];
    await generate(model, P[1], { maxNewTokens: 1, eosTokenId: eos, repetitionPenalty: 2, minNewTokens: 1, logitsProcessor: [after.proc] });
    // Naive: the raw scores, each distinct prompt token once (l < 0 ? 2l : l/2), then EOS −∞.
    const expected = Array.from(plain.seen.get('0:0')!.scores);
    for (const id of new Set(P[1])) expected[id] = expected[id] < 0 ? expected[id] * 2 : expected[id] / 2;
    expected[eos] = -Infinity;
    expect(Array.from(after.seen.get('0:0')!.scores)).toEqual(expected);
    expect(new Set(P[1]).has(eos)).toBe(false); // the two built-ins touch different tokens here
  });

  test('user processors run before the warpers: they see unscaled, unfiltered scores, and sampling draws from warp(their output)', async () => {
    const T = 0.7, topK = 5, seed = 9, n = 6;
    const plain = recorder();
    await generate(model, P[1], { maxNewTokens: 1, eosTokenId: null, logitsProcessor: [plain.proc] });
    const raw = plain.seen.get('0:0')!.scores;
    const order = Array.from(raw.keys()).sort((a, b) => raw[b] - raw[a]);
    const x = order[topK]; // just outside the top 5: top-k before the processor would cut it
    const lift: LogitsProcessor = (_, scores) => {
      for (const s of scores) s[x] = raw[order[0]] + 1;
    };
    const rec = recorder();
    const r = await generate(model, P[1], {
      maxNewTokens: 1, doSample: true, temperature: T, topK, seed, numReturnSequences: n, eosTokenId: null, logitsProcessor: [lift, rec.proc],
    });
    for (let j = 0; j < n; j++) {
      const seen = rec.seen.get(`${j}:0`)!.scores;
      // Unscaled and unfiltered: exactly the raw scores with x lifted (temperature and top-k come later).
      const want = Array.from(raw);
      want[x] = raw[order[0]] + 1;
      expect(Array.from(seen)).toEqual(want);
      // Naive recomputation of the draw: HF warpers on the processed scores, inverse CDF in
      // descending probability with sample j's first uniform.
      const dist = [...hfDistribution(Array.from(seen), T, topK, 1)].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
      expect(dist.map(([id]) => id)).toContain(x);
      const u = seededRandom(seed, j)();
      let cum = 0;
      const pick = dist.find(([, p]) => u < (cum += p))?.[0] ?? dist[dist.length - 1][0];
      expect(r.newTokens[j][0]).toBe(pick);
    }
    expect(r.newTokens.map((t) => t[0])).toContain(x); // the lifted token is drawn
  });

  test('a processor may return new rows; a wrong shape or a non-function is a one-line SpError', async () => {
    const replaced = await generate(model, P[0], {
      maxNewTokens: 2, eosTokenId: null,
      logitsProcessor: [(_, scores) => scores.map((s) => Float64Array.from(s, (_, i) => (i === 123 ? 1 : -Infinity)))],
    });
    expect(replaced.newTokens[0]).toEqual([123, 123]);
    const cases: Array<[unknown, RegExp]> = [
      [[() => [new Float64Array(3)]], /must return nothing or 1 Float64Array rows of 50257 scores/],
      [[(_: unknown, s: Float64Array[]) => s.map((r) => Float32Array.from(r))], /Float64Array rows/],
      [['not a function'], /logitsProcessor must be an array of functions/],
      [ban(1), /logitsProcessor must be an array of functions/],
    ];
    for (const [logitsProcessor, re] of cases) {
      const err = await generate(model, P[0], { maxNewTokens: 1, logitsProcessor: logitsProcessor as LogitsProcessor[] }).catch((e) => e);
      expect(err.name).toBe('SpError');
      expect(err.message).toMatch(re);
      expect(err.message).not.toContain('\n');
    }
  });
});

describe('finish reasons', () => {
  let free: number[];
  beforeAll(async () => {
    free = (await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null })).newTokens[0];
  });

  test('length, eos (forced by a processor) and stop_string, per row of one batch', async () => {
    const stop = model.decode([free[3]]);
    const firstHit = free.findIndex((_, i) => model.decode(free.slice(0, i + 1)).includes(stop));
    // Row 0 (P[0]) runs to the limit; row 1 (P[1]) is forced to EOS at step 2.
    const r = await generate(model, P, { maxNewTokens: 6, eosTokenId: EOS, logitsProcessor: [forceEos([1], 2)] });
    expect(r.finishReasons).toEqual(['length', 'eos']);
    expect(r.newTokens[0]).toHaveLength(6);
    expect(r.newTokens[1]).toEqual([...free.slice(0, 2), EOS]);
    const s = await generate(model, P[1], { maxNewTokens: 8, eosTokenId: null, stopStrings: [stop] });
    expect(s.finishReasons).toEqual(['stop_string']);
    expect(s.newTokens[0]).toEqual(free.slice(0, firstHit + 1));
    // A stop string completed by the last allowed token is the reason, not the length.
    const last = await generate(model, P[1], { maxNewTokens: firstHit + 1, eosTokenId: null, stopStrings: [stop] });
    expect(last.finishReasons).toEqual(['stop_string']);
    const short = await generate(model, P[1], { maxNewTokens: firstHit, eosTokenId: null, stopStrings: [stop] });
    expect(short.finishReasons).toEqual(['length']);
    expect((await generate(model, P[0], { maxNewTokens: 0 })).finishReasons).toEqual(['length']);
  });

  test('streamed events carry the reason on a row\'s last event (null before)', async () => {
    const events: TokenEvent[] = [];
    let result;
    for await (const ev of generateStream(model, P, { maxNewTokens: 4, eosTokenId: EOS, logitsProcessor: [forceEos([0], 1)] })) {
      if ('result' in ev) result = ev.result;
      else events.push(ev);
    }
    for (const row of [0, 1]) {
      const mine = events.filter((e) => e.sequence === row);
      expect(mine.map((e) => e.finishReason)).toEqual([...Array(mine.length - 1).fill(null), result!.finishReasons[row]]);
      expect(mine.map((e) => e.done)).toEqual([...Array(mine.length - 1).fill(false), true]);
    }
    expect(result!.finishReasons).toEqual(['eos', 'length']);
    expect(result!.newTokens[0]).toHaveLength(2);
  });

  test('in memory-budget chunks, processors see output rows and the reasons come back in row order', async () => {
    const opts = { maxNewTokens: 4, doSample: true, temperature: 1.3, topK: 0, eosTokenId: EOS, seed: 5, numReturnSequences: 5 } as const;
    const rows: number[] = [];
    const spy: LogitsProcessor = (_, __, ctx) => void rows.push(...ctx.rows);
    const chunked = await generate(model, P[1], {
      ...opts,
      memoryBudget: generationMemoryBytes(model.config, 2, P[1].length + 4), // chunks of 2 + 2 + 1
      logitsProcessor: [forceEos([1, 4], 1), spy],
    });
    expect(chunked.finishReasons).toEqual(['length', 'eos', 'length', 'length', 'eos']);
    expect(chunked.newTokens[1]).toHaveLength(2);
    expect(chunked.newTokens[4]).toHaveLength(2);
    expect(new Set(rows)).toEqual(new Set([0, 1, 2, 3, 4]));
    const whole = await generate(model, P[1], { ...opts, logitsProcessor: [forceEos([1, 4], 1)] });
    expect(chunked.newTokens).toEqual(whole.newTokens);
    expect(chunked.finishReasons).toEqual(whole.finishReasons);
  });

  test('speaking probe samples carry generate\'s reason', async () => {
    const prompt = 'The term "<neuron>" means';
    const base = { prompt, neurons: ['key:1,3'], greedy: true, projectionTop: 0, maxNewTokens: 6 };
    const plain = await speakingProbe(model, { ...base, eosTokenId: null });
    expect(plain.samples[0].finish).toBe('length');
    const t = plain.samples[0].new_ids;
    const stop = model.decode([t[2]]);
    const hit = t.findIndex((_, i) => model.decode(t.slice(0, i + 1)).includes(stop));
    const stopped = await speakingProbe(model, { ...base, eosTokenId: null, stopStrings: [stop] });
    expect(stopped.samples[0]).toMatchObject({ finish: 'stop_string', new_ids: t.slice(0, hit + 1) });
    const json = JSON.parse(JSON.stringify(stopped));
    expect(json.samples[0].finish).toBe('stop_string');
  });
});
