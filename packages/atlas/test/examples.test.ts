/** The corpus pass against a float64 forward (plain loops) per window; the corpus reader's checks. */
import fs from 'node:fs';
import path from 'node:path';
import { gpt2, type GPT2 } from '@sp/core';
import { corpusPass, readCorpus, TopK } from '@sp/atlas';
import { tmpDir } from '../../core/test/helpers/fixtures.js';
import type { RandomRefWeights } from '../../core/test/reference/random-model.js';
import { expectExamples, randomModelDir, refExamples } from './helpers.js';

const backend = process.env.SP_BACKEND ?? 'wasm';
const DOCS = [
  'The quick brown fox jumps over the lazy dog. Tokyo is the capital of Japan, and Kyoto was the old one.',
  '',
  'Neurons in language models respond to tokens, phrases and ideas; some fire on many unrelated things.',
  'short',
  'A third paragraph with numbers 1, 2, 3 and a name: Ada Lovelace wrote the first program in 1843 for the engine.',
];

describe('corpusPass', () => {
  let model: GPT2;
  let w: RandomRefWeights;
  beforeAll(async () => {
    const r = randomModelDir({ nLayer: 2, nHead: 2, dModel: 16, nCtx: 64 }, 41);
    w = r.w;
    model = await gpt2(r.dir, { backend });
  });
  afterAll(() => model.dispose());

  test('top-k per neuron equals the float64 reference, for every layer in one stream; context clipped at document edges', async () => {
    const window = 12, k = 5, context = 3;
    const got = await corpusPass(model, { docs: DOCS }, [0, 1], { window, topExamples: k, context, batchSize: 3 });
    const docIds = DOCS.map((d) => (d ? model.encode(d) : []));
    for (const layer of [0, 1]) {
      const ref = refExamples(w, docIds, window, layer, k);
      const perNeuron = got.get(layer)!;
      expect(perNeuron).toHaveLength(64);
      perNeuron.forEach((list, j) => {
        expectExamples(list, ref[j], k);
        for (const e of list) {
          const ids = docIds[e.doc];
          const lo = Math.max(0, e.position - context), hi = Math.min(ids.length, e.position + context + 1);
          expect(e.context).toEqual(ids.slice(lo, hi).map((id) => model.tokenString(id)));
          expect(e.center).toBe(e.position - lo);
          expect(e.token_id).toBe(ids[e.position]);
        }
      });
    }
    // The batch size changes nothing.
    const one = await corpusPass(model, { docs: DOCS }, [1], { window, topExamples: k, context, batchSize: 1 });
    expect(one.get(1)).toEqual(got.get(1));
  });

  test('a window longer than the context is refused', async () => {
    await expect(corpusPass(model, { docs: DOCS }, [0], { window: 64, topExamples: 2, context: 1 })).rejects.toThrow("exceeds the model's context of 64");
  });
});

describe('TopK', () => {
  test('activation descending, ties to the earlier offer; NaN ignored', () => {
    const t = new TopK(1, 3);
    [[1, 0], [5, 1], [5, 2], [NaN, 3], [3, 4], [5, 5], [0.5, 6]].forEach(([a, p]) => t.push(0, a, 0, p, 7));
    expect(t.entries(0).map((e) => [e.activation, e.position])).toEqual([[5, 1], [5, 2], [5, 5]]);
  });
});

describe('readCorpus', () => {
  const dir = tmpDir('sp-corpus-');
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  test('plain text: one document per line; JSONL: the text field', () => {
    const c = readCorpus(file('a.txt', 'one\n\nthree\n'));
    expect(c.docs).toEqual(['one', '', 'three']);
    expect(c.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(readCorpus(file('b.jsonl', '{"text":"x"}\n\n{"text":"y","id":2}\n')).docs).toEqual(['x', '', 'y']);
  });
  test('bad corpora are one-line errors', () => {
    expect(() => readCorpus(path.join(dir, 'missing.txt'))).toThrow(/corpus .*missing.txt not found/);
    expect(() => readCorpus(file('c.jsonl', '{"text":"x"}\n{"txt":1}\n'))).toThrow('line 2: expected an object with a string "text" field');
    expect(() => readCorpus(file('d.jsonl', '{"text":"x"}\nnot json\n'))).toThrow('line 2: not valid JSON');
    expect(() => readCorpus(file('e.txt', '\n\n'))).toThrow('has no text');
    expect(() => readCorpus(file('f.txt', Buffer.from([0xff, 0xfe, 0x41]) as unknown as string))).toThrow('not UTF-8');
  });
});
