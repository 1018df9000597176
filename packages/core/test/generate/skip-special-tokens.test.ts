/**
 * skipSpecialTokens (HF's skip_special_tokens): generate keeps `<|endoftext|>` in its texts by
 * default (HF's decode default), speakingProbe drops it by default (the original code decodes with
 * skip_special_tokens=True); ids keep the EOS id either way.
 */
import fs from 'node:fs';
import path from 'node:path';
import { generate, gpt2, speakingProbe, tf, type GPT2, type TokenEvent } from '@sp/core';
import { randomModelDir } from './helpers.js';

const backend = process.env.SP_BACKEND ?? 'wasm';
const EOS = 50256;
const prompt = [464, 3381, 366]; // 'The term "'

let model: GPT2;
let dir: string;
let eosVec: Float32Array; // a residual stream entering the last block that makes the model say EOS next
beforeAll(async () => {
  const r = randomModelDir();
  dir = r.dir;
  model = await gpt2(dir, { backend });
  const d = model.config.dModel;
  eosVec = Float32Array.from(r.w.get('wte.weight').subarray(EOS * d, (EOS + 1) * d), (v) => 40 * v);
});
afterAll(() => {
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});
const inject = () => [{ layer: model.config.nLayer - 1, pos: prompt.length - 1, vector: eosVec }];

test('precondition: with the injection the next token is EOS, without it is not', () => {
  const next = (opts: object) => tf.tidy(() => tf.argMax(model.forward(prompt, { logits: 'last', ...opts }).reshape([-1])).dataSync()[0]);
  expect(next({ inject: inject() })).toBe(EOS);
  expect(next({})).not.toBe(EOS);
});

test('generate: texts keep <|endoftext|> by default; skipSpecialTokens drops it from texts and events, not from ids', async () => {
  const events: Record<string, TokenEvent[]> = { keep: [], skip: [] };
  const base = { maxNewTokens: 4, eosTokenId: null, inject: inject() };
  const keep = await generate(model, prompt, { ...base, onToken: (e) => events.keep.push(e) });
  const skip = await generate(model, prompt, { ...base, skipSpecialTokens: true, onToken: (e) => events.skip.push(e) });
  const ids = keep.newTokens[0];
  expect(ids[0]).toBe(EOS);
  expect(ids.slice(1)).not.toContain(EOS);
  expect(skip.newTokens).toEqual(keep.newTokens);
  expect(skip.sequences).toEqual(keep.sequences);
  expect(keep.texts[0]).toBe('<|endoftext|>' + model.decode(ids.slice(1)));
  expect(skip.texts[0]).toBe(model.decode(ids.slice(1)));
  expect(skip.texts[0]).not.toContain('<|endoftext|>');
  expect(events.keep.map((e) => e.text)).toEqual(ids.map((i) => model.decode([i])));
  expect(events.skip.map((e) => e.text)).toEqual(['', ...ids.slice(1).map((i) => model.decode([i]))]);
  expect(events.skip.map((e) => e.tokenId)).toEqual(ids);
  expect((await generate(model, prompt, { ...base, skipSpecialTokens: false })).texts).toEqual(keep.texts);
  // stopping at EOS (the default eosTokenId): the EOS id is kept, the text is empty
  const stop = await generate(model, prompt, { maxNewTokens: 4, inject: inject(), skipSpecialTokens: true });
  expect(stop.newTokens[0]).toEqual([EOS]);
  expect(stop.texts[0]).toBe('');
});

test('speakingProbe: sample texts drop <|endoftext|> by default (skip_special_tokens=True), ids keep it', async () => {
  const base = {
    prompt: 'The term "<neuron>', neurons: [{ type: 'vector' as const, vector: eosVec, injectLayer: model.config.nLayer - 1 }],
    greedy: true, maxNewTokens: 4, eosTokenId: null, projectionTop: 0,
  };
  const def = await speakingProbe(model, base);
  const keep = await speakingProbe(model, { ...base, skipSpecialTokens: false });
  expect(def.prompt_ids).toEqual([...prompt, 0]); // the virtual token last, injected entering the last block
  expect(def.neuron_positions).toEqual([3]);
  const s = def.samples[0];
  expect(s.new_ids[0]).toBe(EOS);
  expect(keep.samples[0].new_ids).toEqual(s.new_ids);
  expect(keep.samples[0].ids).toEqual(s.ids);
  expect(s.ids.slice(-s.new_ids.length)).toEqual(s.new_ids);
  expect(s.text).toBe(model.decode(s.new_ids.slice(1)));
  expect(s.text).not.toContain('<|endoftext|>');
  expect(keep.samples[0].text).toBe(model.decode(s.new_ids));
  expect(keep.samples[0].text.startsWith('<|endoftext|>')).toBe(true);
  expect(def.options.skip_special_tokens).toBe(true);
  expect(keep.options.skip_special_tokens).toBe(false);
  // streamed tokens follow the same setting
  const streamed: string[] = [];
  await speakingProbe(model, { ...base, onToken: (e) => streamed.push(e.text) });
  expect(streamed.join('')).toBe(s.text);
  // stopping at EOS: finish "eos", new_ids [EOS], text ''
  const stop = await speakingProbe(model, { ...base, eosTokenId: undefined });
  expect(stop.samples[0]).toMatchObject({ new_ids: [EOS], text: '', finish: 'eos' });
});
