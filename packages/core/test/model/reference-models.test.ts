/**
 * The tfjs GPT-2 against the naive float64 reference on random checkpoints written with the
 * library's writer: several shapes, F32/F16/BF16, `transformer.` prefix or not, with or without
 * config.json (then inferred from shapes) and with or without HF's attn.bias/masked_bias buffers.
 * Checked: every hook activation (LayerNorm hook_scale / hook_normalized with TransformerLens'
 * meaning), logits within 1e-4, and greedy continuations (KV cache vs the reference's full
 * recomputation). Each case runs on every matrix engine (helpers/engines.ts), the reference computed once.
 */
import fs from 'node:fs';
import { generate, gpt2, tf, type GPT2 } from '@sp/core';
import { refForward, refGreedy, type RefWeights } from '../reference/gpt2-ref.js';
import { compareCache, firstMismatch, logitsRow, LOGIT_TOL, type Mismatch } from '../helpers/compare.js';
import { randomIds, specLabel, writeRandomGpt2, type RandomGpt2, type RandomGpt2Spec } from '../helpers/random-gpt2.js';
import { engineInfo } from '@sp/core/internals';
import { ENGINES, withEngine } from '../helpers/engines.js';

const NEW_TOKENS = 6;

interface Case extends RandomGpt2Spec {
  /** Expected head count when config.json is absent (inferred as d_model / 64, else 1). */
  inferredHeads?: number;
  promptLen: number;
}

const CASES: Case[] = [
  { nLayer: 1, dModel: 16, nHead: 2, dtype: 'F32', promptLen: 7 },
  { nLayer: 2, dModel: 32, nHead: 4, dtype: 'F16', prefix: true, buffers: true, promptLen: 9 },
  // prompt + new tokens fill the whole context exactly
  { nLayer: 3, dModel: 48, nHead: 6, nCtx: 40, dtype: 'BF16', buffers: true, promptLen: 40 - NEW_TOKENS },
  { nLayer: 4, dModel: 64, nHead: 8, dtype: 'F32', prefix: true, promptLen: 5 },
  { nLayer: 2, dModel: 64, nHead: 1, dtype: 'F16', config: false, buffers: true, inferredHeads: 1, promptLen: 6 },
  { nLayer: 1, dModel: 128, nHead: 2, dtype: 'BF16', prefix: true, config: false, inferredHeads: 2, promptLen: 4 },
  { nLayer: 2, dModel: 16, nHead: 1, nCtx: 12, dtype: 'F32', config: false, buffers: true, inferredHeads: 1, promptLen: 1 },
];

// One checkpoint and one float64 reference result per case, shared by the engines.
const fixtures = new Map<string, RandomGpt2>();
const refResults = new Map<string, unknown>();
const memo = <T>(key: string, f: () => T): T => {
  if (!refResults.has(key)) refResults.set(key, f());
  return refResults.get(key) as T;
};
afterAll(() => {
  for (const fx of fixtures.values()) fs.rmSync(fx.dir, { recursive: true, force: true });
});

/** Compare every hook of one forward pass, and the returned logits, with the reference. */
function compareAll(model: GPT2, ref: RefWeights, ids: number[], key: string): Mismatch[] {
  const want = memo(key + ':forward', () => refForward(ref, ids));
  const { logits, cache } = model.runWithCache(ids);
  try {
    expect(cache.keys().sort()).toEqual(model.hookNames().sort());
    const out = compareCache(cache, model.hookNames(), want.cache);
    const m = firstMismatch('logits (returned)', logitsRow(logits, 0, ids.length), Float64Array.from(want.logits.flat()), LOGIT_TOL, false);
    return m ? [...out, m] : out;
  } finally {
    logits.dispose();
    cache.dispose();
  }
}

/** Greedy ids must equal the reference's; a divergence is only allowed at a near-tie (< 1e-4). */
function expectSameGreedy(ref: RefWeights, prompt: number[], got: number[], key: string): void {
  const want = memo(`${key}:greedy${got.length}`, () => refGreedy(ref, prompt, got.length));
  const k = want.findIndex((id, i) => id !== got[i]);
  if (k < 0) return;
  const last = refForward(ref, [...prompt, ...want.slice(0, k)]).logits.at(-1)!;
  const gap = Math.abs(last[want[k]] - last[got[k]]);
  expect({ step: k, gap, near_tie: gap < LOGIT_TOL }).toEqual({ step: k, gap, near_tie: true });
}

describe.each(CASES.flatMap((c) => ENGINES.map((e) => [specLabel(c), e, c] as const)))('random GPT-2 %s vs float64 reference, engine %s', (label, engine, c) => {
  let fx: RandomGpt2;
  let model: GPT2;
  const prompt = randomIds(c.promptLen, c.nLayer * 1000 + c.dModel);

  beforeAll(async () => {
    if (!fixtures.has(label)) fixtures.set(label, writeRandomGpt2({ ...c, seed: 7 + c.nLayer * 31 + c.dModel }));
    fx = fixtures.get(label)!;
    model = await withEngine(engine, () => gpt2(fx.dir, { backend: process.env.SP_BACKEND ?? 'wasm' }));
    expect(engineInfo(model).engine).toBe(engine);
  });
  /** Without config.json the reference must use the head count the library inferred. */
  const refWeights = (): RefWeights => ({ config: { ...fx.ref.config, nHead: c.inferredHeads ?? c.nHead }, get: fx.ref.get });

  afterAll(() => model?.dispose());

  test('config (read or inferred from shapes)', () => {
    expect(model.config).toMatchObject({
      nLayer: c.nLayer,
      nHead: c.inferredHeads ?? c.nHead,
      dModel: c.dModel,
      dHead: c.dModel / (c.inferredHeads ?? c.nHead),
      dMlp: 4 * c.dModel,
      nCtx: fx.spec.nCtx,
      dVocab: 50257,
      layerNormEps: 1e-5,
    });
  });

  test('every hook activation and the logits match the reference', () => {
    const ref = refWeights();
    expect(model.hookNames()).toHaveLength(2 + 18 * c.nLayer + 3);
    expect(compareAll(model, ref, prompt, label)).toEqual([]);
  });

  test("logits: 'last' equals the reference's last position", () => {
    const want = memo(label + ':forward', () => refForward(refWeights(), prompt)).logits.at(-1)!;
    const last = model.forward(prompt, { logits: 'last' });
    expect(last.shape).toEqual([1, 1, 50257]);
    const m = firstMismatch('last logits', last.dataSync(), want, LOGIT_TOL, false);
    last.dispose();
    expect(m).toBeUndefined();
  });

  test('greedy continuation (KV cache) equals the reference', async () => {
    const ref = refWeights();
    const before = tf.memory().numTensors;
    const r = await generate(model, prompt, { maxNewTokens: NEW_TOKENS, eosTokenId: null });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.newTokens[0]).toHaveLength(NEW_TOKENS);
    expectSameGreedy(ref, prompt, r.newTokens[0], label);
  });
});
