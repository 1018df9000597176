/** attentionPatterns: every head's hook_pattern against the float64 reference; the report contract; errors. */
import fs from 'node:fs';
import { attentionPatterns, attentionPatternsAsync, gpt2, type GPT2 } from '@sp/core';
import { refForward, type RefWeights } from '../reference/gpt2-ref.js';
import { randomIds, writeRandomGpt2, type RandomGpt2 } from '../helpers/random-gpt2.js';
import { expectSpError } from '../helpers/errors.js';

const SPEC = { nLayer: 3, dModel: 32, nHead: 4, nCtx: 16, seed: 31337 };
const PROMPT = randomIds(7, 99);
let fx: RandomGpt2;
let ref: RefWeights;
let model: GPT2;
beforeAll(async () => {
  fx = writeRandomGpt2({ ...SPEC, dtype: 'F16' });
  ref = fx.ref;
  model = await gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' });
});
afterAll(() => {
  model?.dispose();
  if (fx) fs.rmSync(fx.dir, { recursive: true, force: true });
});

test('attentionPatternsAsync (the webgpu form) returns exactly what attentionPatterns does', async () => {
  expect(await attentionPatternsAsync(model, PROMPT, { layers: [2, 0, 2] })).toEqual(attentionPatterns(model, PROMPT, { layers: [2, 0, 2] }));
});

test('every head of every layer equals the reference hook_pattern to 1e-5; rows sum to 1; future keys are exactly 0', () => {
  const r = attentionPatterns(model, PROMPT);
  const want = refForward(ref, PROMPT).cache;
  const n = PROMPT.length;
  expect(r.ids).toEqual(PROMPT);
  expect(r.tokens).toEqual(PROMPT.map((id) => model.tokenString(id)));
  expect(r.layers.map((L) => L.layer)).toEqual([0, 1, 2]);
  let worst = 0;
  for (const L of r.layers) {
    const p = want.get(`blocks.${L.layer}.attn.hook_pattern`)!.data; // [h, q, k]
    expect(L.heads).toHaveLength(SPEC.nHead);
    L.heads.forEach((head, h) => {
      expect(head).toHaveLength(n);
      head.forEach((row, q) => {
        expect(row).toHaveLength(n);
        let sum = 0;
        row.forEach((v, k) => {
          worst = Math.max(worst, Math.abs(v - p[(h * n + q) * n + k]));
          if (k > q) expect(v).toBe(0);
          sum += v;
        });
        expect(Math.abs(sum - 1)).toBeLessThan(1e-5);
      });
      expect(head[0][0]).toBe(1); // the first query sees only itself
    });
  }
  expect(worst).toBeLessThan(1e-5);
});

test('layers picks blocks in the order given; text input and prependBos', () => {
  const r = attentionPatterns(model, PROMPT, { layers: [2, 0] });
  const all = attentionPatterns(model, PROMPT);
  expect(r.layers.map((L) => L.layer)).toEqual([2, 0]);
  expect(r.layers[0].heads).toEqual(all.layers[2].heads);
  const t = attentionPatterns(model, 'Hello world', { prependBos: true, layers: [1] });
  expect(t.tokens[0]).toBe('<|endoftext|>');
  expect(t.ids).toEqual([model.eosTokenId, ...model.encode('Hello world')]);
  const want = refForward(ref, t.ids).cache.get('blocks.1.attn.hook_pattern')!.data;
  expect(Math.max(...t.layers[0].heads.flat(2).map((v, i) => Math.abs(v - want[i])))).toBeLessThan(1e-5);
});

test('bad layers and batches: one-line SpErrors', () => {
  expectSpError(() => attentionPatterns(model, PROMPT, { layers: [3] }), 'OUT_OF_RANGE', /layer 3 is out of range \[0, 2\]/);
  expectSpError(() => attentionPatterns(model, PROMPT, { layers: [-1] }), 'OUT_OF_RANGE', /layer -1/);
  expectSpError(() => attentionPatterns(model, PROMPT, { layers: [] }), 'BAD_INPUT', /non-empty/);
  expectSpError(() => attentionPatterns(model, [PROMPT, PROMPT] as unknown as number[]), 'BAD_INPUT', /one prompt/);
});
