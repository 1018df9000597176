/**
 * TransformerLens conveniences on ActivationCache — `cache.get('resid_pre', 3)`, accumulatedResid,
 * removeBatchDim — against the float64 reference forward pass (gpt2-ref.ts).
 */
import fs from 'node:fs';
import { gpt2, tf, type ActivationCache, type GPT2 } from '@sp/core';
import { refForward, type RefResult } from '../reference/gpt2-ref.js';
import { ACT_TOL, firstMismatch } from '../helpers/compare.js';
import { expectSpError } from '../helpers/errors.js';
import { randomIds, writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';

const SPEC = { nLayer: 3, dModel: 32, nHead: 4, nCtx: 16, seed: 77 };
const N = SPEC.nLayer;
const D = SPEC.dModel;
const IDS = randomIds(6, 5);
const S = IDS.length;

let fx: RandomGpt2;
let model: GPT2;
let want: RefResult;
beforeAll(async () => {
  fx = writeRandomGpt2(SPEC);
  model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
  want = refForward(fx.ref, IDS);
});
afterAll(() => {
  model?.dispose();
  if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
});

const ref = (name: string): Float64Array => want.cache.get(name)!.data;

/** TransformerLens' apply_ln_to_stack on one float64 [S, D] activation: centre, then divide by the cached scale [S, 1]. */
function refLn(x: Float64Array, scale: Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let p = 0; p < S; p++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[p * D + i];
    mean /= D;
    for (let i = 0; i < D; i++) out[p * D + i] = (x[p * D + i] - mean) / scale[p];
  }
  return out;
}

/** Positions `pos` of a float64 [S, D] activation. */
const refPos = (x: Float64Array, pos: number[]): Float64Array => Float64Array.from(pos.flatMap((p) => Array.from(x.subarray(p * D, (p + 1) * D))));

function withCache<T>(fn: (cache: ActivationCache) => T, batch: number[] | number[][] = IDS): T {
  const { logits, cache } = model.runWithCache(batch);
  logits.dispose();
  try {
    return fn(cache);
  } finally {
    cache.dispose();
  }
}

function expectClose(name: string, t: tf.Tensor, wantData: ArrayLike<number>, shape: number[]): void {
  expect(t.shape).toEqual(shape);
  expect(firstMismatch(name, t.dataSync(), wantData, ACT_TOL)).toBeUndefined();
}

test("cache.get(short, layer, type) is TransformerLens' cache[short, layer, type]", () => {
  withCache((cache) => {
    const pairs: Array<[Parameters<ActivationCache['get']>, string]> = [
      [['resid_pre', 2], 'blocks.2.hook_resid_pre'], [['resid_mid', 0], 'blocks.0.hook_resid_mid'], [['resid_post', 2], 'blocks.2.hook_resid_post'],
      [['attn_out', 1], 'blocks.1.hook_attn_out'], [['mlp_out', 1], 'blocks.1.hook_mlp_out'], [['q', 0], 'blocks.0.attn.hook_q'],
      [['k', 1], 'blocks.1.attn.hook_k'], [['v', 2], 'blocks.2.attn.hook_v'], [['z', 0], 'blocks.0.attn.hook_z'],
      [['pattern', 1], 'blocks.1.attn.hook_pattern'], [['attn', 1], 'blocks.1.attn.hook_pattern'], [['attn_scores', 1], 'blocks.1.attn.hook_attn_scores'],
      [['pre', 2], 'blocks.2.mlp.hook_pre'], [['post', 2], 'blocks.2.mlp.hook_post'], [['normalized', 1, 'ln2'], 'blocks.1.ln2.hook_normalized'],
      [['scale', 0, 'ln1'], 'blocks.0.ln1.hook_scale'], [['scale'], 'ln_final.hook_scale'], [['normalized'], 'ln_final.hook_normalized'],
      [['embed'], 'hook_embed'], [['pos_embed'], 'hook_pos_embed'], [['k2'], 'blocks.2.attn.hook_k'], [['scale1ln2'], 'blocks.1.ln2.hook_scale'],
    ];
    for (const [args, full] of pairs) {
      const t = (cache.get as (...a: unknown[]) => tf.Tensor)(...args);
      expect([args, t]).toEqual([args, cache.get(full as never)]); // the very same tensor
    }
    // and the values are the reference's
    expectClose('resid_mid 1', cache.get('resid_mid', 1), ref('blocks.1.hook_resid_mid'), [1, S, D]);
    expectSpError(() => cache.get('resid_pre', N), 'NOT_FOUND', /blocks\.3\.hook_resid_pre/);
  });
});

describe('accumulatedResid (TransformerLens accumulated_resid)', () => {
  const stackRef = (names: string[], pos?: number[]) => Float64Array.from(names.flatMap((n) => Array.from(pos ? refPos(ref(n), pos) : ref(n))));
  const pres = (upTo: number) => Array.from({ length: upTo }, (_, l) => `blocks.${l}.hook_resid_pre`);

  test('default: resid_pre of every layer, then the final resid_post — [n_layer + 1, batch, pos, d]', () => {
    withCache((cache) => {
      const names = [...pres(N), `blocks.${N - 1}.hook_resid_post`];
      for (const layer of [undefined, -1, N]) {
        const t = cache.accumulatedResid(layer);
        expectClose(`accumulated ${layer}`, t, stackRef(names), [N + 1, 1, S, D]);
        t.dispose();
      }
    });
  });

  test('layer L < n_layer: resid_pre 0 … L (inclusive); inclMid adds resid_mid of each layer before L', () => {
    withCache((cache) => {
      const t = cache.accumulatedResid(1);
      expectClose('accumulated 1', t, stackRef(pres(2)), [2, 1, S, D]);
      const m = cache.accumulatedResid(2, { inclMid: true });
      const names = ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid', 'blocks.1.hook_resid_pre', 'blocks.1.hook_resid_mid', 'blocks.2.hook_resid_pre'];
      expectClose('accumulated 2 mid', m, stackRef(names), [5, 1, S, D]);
      const full = cache.accumulatedResid(undefined, { inclMid: true });
      expect(full.shape).toEqual([2 * N + 1, 1, S, D]);
      expectClose('accumulated all mid', full, stackRef([...names, 'blocks.2.hook_resid_mid', 'blocks.2.hook_resid_post']), [2 * N + 1, 1, S, D]);
      tf.dispose([t, m, full]);
      const zero = cache.accumulatedResid(0);
      expectClose('accumulated 0', zero, ref('hook_embed').map((e, i) => e + ref('hook_pos_embed')[i]), [1, 1, S, D]); // resid_pre 0 = embed + pos_embed
      zero.dispose();
    });
  });

  test("applyLn: centred and divided by the model's own LayerNorm scale there (ln_final, or blocks.L.ln1)", () => {
    withCache((cache) => {
      const names = [...pres(N), `blocks.${N - 1}.hook_resid_post`];
      const fin = ref('ln_final.hook_scale');
      const t = cache.accumulatedResid(undefined, { applyLn: true });
      expectClose('ln stack', t, Float64Array.from(names.flatMap((n) => Array.from(refLn(ref(n), fin)))), [N + 1, 1, S, D]);
      // the last component is exactly what ln_final normalised
      const last = tf.slice(t, [N, 0, 0, 0], [1, 1, S, D]);
      expect(firstMismatch('last = ln_final.hook_normalized', last.dataSync(), ref('ln_final.hook_normalized'), ACT_TOL)).toBeUndefined();
      const l1 = cache.accumulatedResid(1, { applyLn: true });
      const sc = ref('blocks.1.ln1.hook_scale');
      expectClose('ln stack 1', l1, Float64Array.from(pres(2).flatMap((n) => Array.from(refLn(ref(n), sc)))), [2, 1, S, D]);
      const last1 = tf.slice(l1, [1, 0, 0, 0], [1, 1, S, D]);
      expect(firstMismatch('last = blocks.1.ln1.hook_normalized', last1.dataSync(), ref('blocks.1.ln1.hook_normalized'), ACT_TOL)).toBeUndefined();
      tf.dispose([t, last, l1, last1]);
    });
  });

  test('posSlice: one position drops the axis (negative from the end); a list keeps it', () => {
    withCache((cache) => {
      const names = [...pres(N), `blocks.${N - 1}.hook_resid_post`];
      const one = cache.accumulatedResid(undefined, { posSlice: -1 });
      expectClose('pos -1', one, stackRef(names, [S - 1]), [N + 1, 1, D]);
      const some = cache.accumulatedResid(undefined, { posSlice: [0, 2], applyLn: true });
      const fin = ref('ln_final.hook_scale');
      expectClose('pos [0,2] ln', some, Float64Array.from(names.flatMap((n) => Array.from(refPos(refLn(ref(n), fin), [0, 2])))), [N + 1, 1, 2, D]);
      tf.dispose([one, some]);
      expectSpError(() => cache.accumulatedResid(undefined, { posSlice: S }), 'OUT_OF_RANGE', /posSlice 6 is out of range for 6 positions/);
      expectSpError(() => cache.accumulatedResid(N + 1), 'OUT_OF_RANGE', /accumulatedResid layer 4/);
    });
  });

  test('a cache without the needed names says which is missing; no tensors leak', () => {
    const before = tf.memory().numTensors;
    const { logits, cache } = model.runWithCache(IDS, { names: ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre'] });
    logits.dispose();
    expectSpError(() => cache.accumulatedResid(), 'NOT_FOUND', /blocks\.2\.hook_resid_pre/);
    const t = cache.accumulatedResid(1);
    expect(t.shape).toEqual([2, 1, S, D]);
    t.dispose();
    expectSpError(() => cache.accumulatedResid(1, { applyLn: true }), 'NOT_FOUND', /blocks\.1\.ln1\.hook_scale/);
    cache.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('removeBatchDim (TransformerLens remove_batch_dim)', () => {
  test('drops the batch axis of every activation of a one-row cache, values unchanged', () => {
    withCache((cache) => {
      const shapes = new Map(cache.keys().map((k) => [k, cache.get(k).shape]));
      const before = tf.memory().numTensors;
      expect(cache.removeBatchDim()).toBe(cache);
      expect(cache.hasBatchDim).toBe(false);
      expect(tf.memory().numTensors).toBe(before);
      for (const k of cache.keys()) expect([k, cache.get(k).shape]).toEqual([k, shapes.get(k)!.slice(1)]);
      expectClose('resid_post 2', cache.get('resid_post', 2), ref('blocks.2.hook_resid_post'), [S, D]);
      expectClose('pattern 1', cache.get('pattern', 1), ref('blocks.1.attn.hook_pattern'), [SPEC.nHead, S, S]);
      // accumulatedResid works on it too: [n_layer + 1, pos, d]
      const t = cache.accumulatedResid(undefined, { applyLn: true, posSlice: -1 });
      const fin = ref('ln_final.hook_scale');
      const names = [...Array.from({ length: N }, (_, l) => `blocks.${l}.hook_resid_pre`), `blocks.${N - 1}.hook_resid_post`];
      expectClose('no batch', t, Float64Array.from(names.flatMap((n) => Array.from(refPos(refLn(ref(n), fin), [S - 1])))), [N + 1, D]);
      t.dispose();
      expect(cache.removeBatchDim()).toBe(cache); // again: nothing to remove
      expect(cache.get('resid_post', 2).shape).toEqual([S, D]);
    });
  });

  test('a batch of two is refused and the cache left as it was', () => {
    withCache(
      (cache) => {
        expectSpError(() => cache.removeBatchDim(), 'BAD_INPUT', /removeBatchDim needs a batch of one; "hook_embed" has shape \[2,6,32\]/);
        expect(cache.hasBatchDim).toBe(true);
        expect(cache.get('resid_pre', 0).shape).toEqual([2, S, D]);
      },
      [IDS, IDS],
    );
  });
});
