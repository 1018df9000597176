/**
 * Hook points (TransformerLens names) on a random GPT-2, checked against the float64 reference:
 * reading every hook, replacing the residual stream (hook, `inject`), `embeds`, filter hooks,
 * errors (wrong shape, unknown name), cache disposal and ragged batches.
 */
import fs from 'node:fs';
import { gpt2, tf, type GPT2, type HookName } from '@sp/core';
import { logSoftmax, refForward, refLens, type RefOptions, type RefWeights } from '../reference/gpt2-ref.js';
import { mulberry32 } from '../reference/random-model.js';
import { compareCache, firstMismatch, logitsRow, LOGIT_TOL, rowSlice } from '../helpers/compare.js';
import { randomIds, writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';
import { expectSpError } from '../helpers/errors.js';
import { ENGINES, withEngine } from '../helpers/engines.js';
import { engineInfo } from '@sp/core/internals';

const SPEC = { nLayer: 2, dModel: 32, nHead: 4, nCtx: 16, seed: 99 };
const PROMPT = randomIds(6, 4242);

let fx: RandomGpt2;
let ref: RefWeights;
let model: GPT2;
let base: ReturnType<typeof refForward>;

beforeAll(() => {
  fx = writeRandomGpt2(SPEC);
  ref = fx.ref;
  base = refForward(ref, PROMPT);
});
afterAll(() => {
  if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
});

function randomVector(seed: number, d = SPEC.dModel): number[] {
  const u = mulberry32(seed);
  return Array.from({ length: d }, () => Math.fround(u() * 2 - 1));
}

/** Run runWithCache with `opts` and compare every hook and the logits with refForward(refOpts). */
function expectMatchesReference(opts: Parameters<GPT2['runWithCache']>[1], refOpts: RefOptions, ids = PROMPT): void {
  const want = refForward(ref, ids, refOpts);
  const { logits, cache } = model.runWithCache(ids, opts);
  try {
    const bad = compareCache(cache, model.hookNames(), want.cache);
    const m = firstMismatch('logits', logitsRow(logits, 0, ids.length), Float64Array.from(want.logits.flat()), LOGIT_TOL, false);
    expect(m ? [...bad, m] : bad).toEqual([]);
  } finally {
    logits.dispose();
    cache.dispose();
  }
}

/** Largest |a - b| between two logit arrays. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] - b[i];
    if (x > m) m = x;
    else if (-x > m) m = -x;
    else if (x !== x) return NaN;
  }
  return m;
}

// Every test below on each matrix engine: the hooks, embeds and inject must not depend on it.
describe.each(ENGINES)('engine %s', (engine) => {
  beforeAll(async () => {
    model = await withEngine(engine, () => gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' }));
    expect(engineInfo(model).engine).toBe(engine);
  });
  afterAll(() => model?.dispose());

  describe('reading hooks (runWithCache)', () => {
    const names = writeRandomGpt2Names();
    test.each(names)('%s equals the reference', (name) => {
      const { logits, cache } = model.runWithCache(PROMPT, { names: [name] });
      try {
        expect(cache.keys()).toEqual([name]);
        expect(compareCache(cache, [name], base.cache)).toEqual([]);
      } finally {
        logits.dispose();
        cache.dispose();
      }
    });

    test('a filter function selects what is cached', () => {
      const { logits, cache } = model.runWithCache(PROMPT, { names: (n) => n.endsWith('hook_resid_post') });
      try {
        expect(cache.keys()).toEqual(['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']);
        expect(compareCache(cache, cache.keys(), base.cache)).toEqual([]);
      } finally {
        logits.dispose();
        cache.dispose();
      }
    });
  });

  /** Hook names of SPEC's model, known before the model loads (test.each needs them up front). */
  function writeRandomGpt2Names(): HookName[] {
    const names = ['hook_embed', 'hook_pos_embed'];
    const block = ['hook_resid_pre', 'ln1.hook_scale', 'ln1.hook_normalized', 'attn.hook_q', 'attn.hook_k', 'attn.hook_v', 'attn.hook_attn_scores', 'attn.hook_pattern', 'attn.hook_z', 'attn.hook_result', 'hook_attn_out', 'hook_resid_mid', 'ln2.hook_scale', 'ln2.hook_normalized', 'mlp.hook_pre', 'mlp.hook_post', 'hook_mlp_out', 'hook_resid_post'];
    for (let i = 0; i < SPEC.nLayer; i++) for (const s of block) names.push(`blocks.${i}.${s}`);
    return [...names, 'ln_final.hook_scale', 'ln_final.hook_normalized', 'hook_logits'] as HookName[];
  }

  describe('replacing activations', () => {
    test('hook names are the TransformerLens ones, in forward order', () => {
      expect(model.hookNames()).toEqual(writeRandomGpt2Names());
    });

    test.each([0, 1])('a hook returning a tensor replaces blocks.%i.hook_resid_pre as the reference predicts', (layer) => {
      const pos = 2;
      const v = randomVector(10 + layer);
      const replace = (t: tf.Tensor): tf.Tensor => {
        const [b, s, d] = t.shape;
        const mask = tf.tensor3d(Array.from({ length: b * s * d }, (_, i) => (Math.floor(i / d) % s === pos ? 1 : 0)), [b, s, d], 'bool');
        return tf.where(mask, tf.broadcastTo(tf.tensor1d(v), [b, s, d]), t);
      };
      const residPre = [{ layer, pos, vector: v }];
      expectMatchesReference({ fwdHooks: [[`blocks.${layer}.hook_resid_pre`, replace]] }, { residPre });
      // runWithHooks gives the same logits, and they differ from the unpatched run.
      const want = refForward(ref, PROMPT, { residPre }).logits.flat();
      const logits = model.runWithHooks(PROMPT, { fwdHooks: [[`blocks.${layer}.hook_resid_pre`, replace]] });
      const got = logits.dataSync();
      logits.dispose();
      expect(maxDiff(got, want)).toBeLessThan(LOGIT_TOL);
      expect(maxDiff(want, base.logits.flat())).toBeGreaterThan(1e-2);
    });

    test.each([0, 1])('inject at layer %i equals the reference residPre', (layer) => {
      const v = randomVector(20 + layer);
      expectMatchesReference({ inject: [{ layer, pos: 4, vector: v }] }, { residPre: [{ layer, pos: 4, vector: v }] });
    });

    test('embeds replaces the token embedding (position embedding still added)', () => {
      const v = randomVector(30);
      expectMatchesReference({ embeds: [{ pos: 1, vector: v }] }, { embeds: [{ pos: 1, vector: v }] });
    });

    test('embeds and inject together, several positions', () => {
      const e = [{ pos: 0, vector: randomVector(31) }, { pos: 5, vector: randomVector(32) }];
      const j = [{ layer: 1, pos: 3, vector: randomVector(33) }, { layer: 0, pos: 5, vector: randomVector(34) }];
      expectMatchesReference({ embeds: e, inject: j }, { embeds: e, residPre: j });
    });

    test('a filter-function hook scales blocks.1.hook_resid_pre at every position', () => {
      const seen: Array<[string, number | undefined]> = [];
      const scaled = Array.from(base.cache.get('blocks.1.hook_resid_pre')!.data, (x) => x * 0.5);
      const d = SPEC.dModel;
      const residPre = PROMPT.map((_, pos) => ({ layer: 1, pos, vector: scaled.slice(pos * d, (pos + 1) * d) }));
      expectMatchesReference(
        {
          fwdHooks: [[(n) => /^blocks\.\d+\.hook_resid_pre$/.test(n), (t, { hook }) => {
            seen.push([hook.name, hook.layer]);
            return hook.layer === 1 ? tf.mul(t, 0.5) : undefined;
          }]],
        },
        { residPre },
      );
      expect(seen).toEqual([['blocks.0.hook_resid_pre', 0], ['blocks.1.hook_resid_pre', 1]]);
    });

    test('a match-all filter sees every hook once, in forward order, with its shape', () => {
      const seen: Array<[string, number[]]> = [];
      const logits = model.runWithHooks(PROMPT, { fwdHooks: [[() => true, (t, { hook }) => void seen.push([hook.name, t.shape])]] });
      logits.dispose();
      expect(seen.map(([n]) => n)).toEqual(model.hookNames());
      const shapes = new Map(seen);
      const s = PROMPT.length;
      expect(shapes.get('blocks.1.attn.hook_q')).toEqual([1, s, 4, 8]);
      expect(shapes.get('blocks.1.attn.hook_pattern')).toEqual([1, 4, s, s]);
      expect(shapes.get('blocks.0.mlp.hook_post')).toEqual([1, s, 4 * SPEC.dModel]);
      expect(shapes.get('blocks.1.ln2.hook_scale')).toEqual([1, s, 1]);
      expect(shapes.get('ln_final.hook_normalized')).toEqual([1, s, SPEC.dModel]);
      expect(shapes.get('hook_logits')).toEqual([1, s, 50257]);
    });

    test('unembedResid of the last resid_post equals the logits; any leading shape; wrong width is SpError', () => {
      const { logits, cache } = model.runWithCache(PROMPT, { names: [`blocks.${SPEC.nLayer - 1}.hook_resid_post`, 'blocks.0.hook_resid_pre'] });
      const u = model.unembedResid(cache.get(`blocks.${SPEC.nLayer - 1}.hook_resid_post`));
      expect(u.shape).toEqual([1, PROMPT.length, 50257]);
      expect(maxDiff(u.dataSync(), base.logits.flat())).toBeLessThan(LOGIT_TOL);
      // a single vector [d] and a [2, 3, d] stack give the same rows
      const x0 = tf.tidy(() => tf.reshape(tf.slice(cache.get('blocks.0.hook_resid_pre'), [0, 2, 0], [1, 1, -1]), [SPEC.dModel]));
      const one = model.unembedResid(x0);
      const many = tf.tidy(() => model.unembedResid(tf.stack([tf.stack([x0, x0, x0]), tf.stack([x0, x0, x0])])));
      expect(one.shape).toEqual([50257]);
      expect(many.shape).toEqual([2, 3, 50257]);
      const o = one.dataSync();
      expect(maxDiff(many.dataSync().subarray(4 * 50257, 5 * 50257), o)).toBeLessThan(1e-5);
      // ... and it is the reference's logit lens at layer 0, position 2 (log-probs compared)
      expect(maxDiff(logSoftmax(Array.from(o)), refLens(ref, PROMPT)[0][2])).toBeLessThan(LOGIT_TOL);
      tf.dispose([logits, u, x0, one, many]);
      cache.dispose();
      expectSpError(() => model.unembedResid(tf.zeros([2, SPEC.dModel + 1])), 'BAD_INPUT', /d_model/);
    });

    test('hooks returning nothing change nothing', () => {
      const plain = model.forward(PROMPT);
      const hooked = model.runWithHooks(PROMPT, { fwdHooks: [[() => true, () => undefined]] });
      expect(maxDiff(plain.dataSync(), hooked.dataSync())).toBe(0);
      tf.dispose([plain, hooked]);
    });
  });

  describe('errors and memory', () => {
    test('a hook returning a wrong shape raises SpError and leaks nothing', () => {
      const before = tf.memory().numTensors;
      expectSpError(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.0.hook_resid_pre', (t) => tf.slice(t, [0, 0, 0], [1, 2, -1])]] }), 'BAD_INPUT', /blocks\.0\.hook_resid_pre.*shape/);
      expectSpError(() => model.runWithCache(PROMPT, { fwdHooks: [['blocks.1.attn.hook_pattern', (t) => tf.reshape(t, [-1])]] }), 'BAD_INPUT', /shape/);
      expect(tf.memory().numTensors).toBe(before);
    });

    test('a hook returning something other than a tensor raises SpError', () => {
      const before = tf.memory().numTensors;
      expectSpError(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.0.hook_resid_pre', (t) => t.arraySync() as unknown as tf.Tensor]] }), 'BAD_INPUT', /returned an array, expected a tensor of shape \[1,6,32\]/);
      expectSpError(() => model.runWithHooks(PROMPT, { fwdHooks: [['hook_embed', () => 0 as unknown as tf.Tensor]] }), 'BAD_INPUT', /hook on hook_embed returned number/);
      expect(tf.memory().numTensors).toBe(before);
    });

    test('empty input and a disposed model raise SpError', async () => {
      expectSpError(() => model.forward([]), 'BAD_INPUT', /empty input/);
      expectSpError(() => model.forward(''), 'BAD_INPUT', /empty input/);
      expectSpError(() => model.forward([[1, 2], []]), 'BAD_INPUT', /empty input/);
      const other = await gpt2(fx.dir);
      other.dispose();
      expectSpError(() => other.forward(PROMPT), 'BAD_INPUT', /has been disposed/);
      expectSpError(() => other.unembedResid(tf.zeros([1, SPEC.dModel])), 'BAD_INPUT', /has been disposed/);
    });

    test('unknown hook names raise SpError', () => {
      const before = tf.memory().numTensors;
      // @ts-expect-error a misspelt hook name is also a type error
      expectSpError(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.0.hook_nope', () => undefined]] }), 'BAD_INPUT', /blocks\.0\.hook_nope/);
      expectSpError(() => model.runWithHooks(PROMPT, { fwdHooks: [['blocks.2.hook_resid_pre', () => undefined]] }), 'BAD_INPUT', /blocks\.2\.hook_resid_pre/);
      // @ts-expect-error a misspelt hook name is also a type error
      expectSpError(() => model.runWithCache(PROMPT, { names: ['blocks.0.hook_resid_pre', 'hook_typo'] }), 'BAD_INPUT', /hook_typo/);
      expect(tf.memory().numTensors).toBe(before);
    });

    test('bad overrides raise SpError', () => {
      expectSpError(() => model.forward(PROMPT, { inject: [{ layer: 2, pos: 0, vector: randomVector(1) }] }), 'OUT_OF_RANGE', /layer/);
      expectSpError(() => model.forward(PROMPT, { inject: [{ layer: 0, pos: PROMPT.length, vector: randomVector(1) }] }), 'OUT_OF_RANGE', /position/);
      expectSpError(() => model.forward(PROMPT, { embeds: [{ pos: 0, vector: randomVector(1, 31) }] }), 'BAD_INPUT', /d_model/);
      expectSpError(() => model.forward(PROMPT, { embeds: [{ pos: 0, batch: 1, vector: randomVector(1) }] }), 'OUT_OF_RANGE', /batch/);
    });

    test('cache.dispose frees every cached tensor', () => {
      const before = tf.memory().numTensors;
      const { logits, cache } = model.runWithCache(PROMPT);
      expect(cache.size).toBe(model.hookNames().length);
      expect(tf.memory().numTensors).toBe(before + 1 + cache.size);
      logits.dispose();
      cache.dispose();
      expect(cache.size).toBe(0);
      expect(tf.memory().numTensors).toBe(before);
    });
  });

  describe('ragged batches', () => {
    const long = PROMPT;
    const short = randomIds(3, 777);

    test('each row equals its prompt run alone (real positions), for every hook', () => {
      const before = tf.memory().numTensors;
      const { logits, cache } = model.runWithCache([long, short]);
      try {
        expect(logits.shape).toEqual([2, long.length, 50257]);
        for (const [row, ids] of [[0, long], [1, short]] as const) {
          const want = refForward(ref, ids);
          expect(compareCache(cache, model.hookNames(), want.cache, row, ids.length)).toEqual([]);
          // ... and the library's own single-prompt run agrees to float32 rounding
          const alone = model.runWithCache(ids);
          for (const name of model.hookNames()) {
            const a = rowSlice(name, alone.cache.get(name), 0, ids.length);
            const b = rowSlice(name, cache.get(name), row, ids.length);
            const m = firstMismatch(name, b, a, 1e-5);
            expect(m).toBeUndefined();
          }
          expect(maxDiff(logitsRow(logits, row, ids.length), logitsRow(alone.logits, 0, ids.length))).toBeLessThan(1e-5);
          alone.logits.dispose();
          alone.cache.dispose();
        }
      } finally {
        logits.dispose();
        cache.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    });

    test('toTokens right-pads with a mask', () => {
      const b = model.toTokens([long, short]);
      expect(b.lengths).toEqual([long.length, short.length]);
      expect(b.mask[1]).toEqual([1, 1, 1, 0, 0, 0]);
      expect(b.ids[1].slice(0, 3)).toEqual(short);
    });

    test('inject with a batch row patches only that row', () => {
      const v = randomVector(40);
      const logits = model.forward([long, short], { inject: [{ layer: 1, pos: 1, vector: v, batch: 1 }] });
      const row0 = logitsRow(logits, 0, long.length);
      const row1 = logitsRow(logits, 1, short.length);
      logits.dispose();
      expect(maxDiff(row0, base.logits.flat())).toBeLessThan(LOGIT_TOL);
      expect(maxDiff(row1, refForward(ref, short, { residPre: [{ layer: 1, pos: 1, vector: v }] }).logits.flat())).toBeLessThan(LOGIT_TOL);
    });
  });
});
