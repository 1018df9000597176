/**
 * Checkpoint: HF GPT-2 directories opened lazily. Name prefixes, ignored buffers, config from
 * config.json or inferred from shapes, every malformed directory → one-line SpError, and that
 * Checkpoint.open + ffKey on a large checkpoint reads a few KB, not the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Checkpoint, encodeSafetensors, gpt2, openCheckpoint, SpError, type TensorToWrite } from '@sp/core';
import { randomRefWeights, type RandomTensor } from '../reference/random-model.js';
import { tmpDir } from '../helpers/fixtures.js';
import { countReadBytes, writeSparseSafetensors } from '../helpers/sparse-safetensors.js';
import { expectSpError } from '../helpers/errors.js';

const CFG = { nLayer: 2, nHead: 2, dModel: 16, nCtx: 8, vocabSize: 100, eps: 1e-5 };
const W = randomRefWeights(CFG, 31);
const CONFIG_JSON = { model_type: 'gpt2', n_layer: 2, n_head: 2, n_embd: 16, n_positions: 8, n_ctx: 8, vocab_size: 100, layer_norm_epsilon: 1e-5, n_inner: null, activation_function: 'gelu_new' };

let root: string;
beforeAll(() => {
  root = tmpDir('sp-ckpt-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let dirNo = 0;
/** A model dir with `tensors` (default: the random weights) and config.json (object, raw text, or none). */
function writeDir(opts: { tensors?: TensorToWrite[]; config?: object | string | null; prefix?: string } = {}): string {
  const dir = path.join(root, `m${dirNo++}`);
  fs.mkdirSync(dir);
  const pre = opts.prefix ?? '';
  const tensors = opts.tensors ?? W.tensors().map((t) => ({ ...t, name: pre + t.name }));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  const cfg = opts.config === undefined ? CONFIG_JSON : opts.config;
  if (cfg !== null) fs.writeFileSync(path.join(dir, 'config.json'), typeof cfg === 'string' ? cfg : JSON.stringify(cfg));
  return dir;
}

const base = (): RandomTensor[] => W.tensors();
const without = (name: string): TensorToWrite[] => base().filter((t) => t.name !== name);

function openErr(dir: string): SpError {
  return expectSpError(() => Checkpoint.open(dir).close());
}

/** Column j of a [rows, cols] row-major matrix. */
const column = (m: Float32Array, cols: number, j: number): number[] => Array.from({ length: m.length / cols }, (_, r) => m[r * cols + j]);

describe('valid checkpoints', () => {
  test.each([['plain', ''], ['transformer.-prefixed', 'transformer.']])('%s names: tensors, FF keys/values, token embeddings', (_l, prefix) => {
    const ck = Checkpoint.open(writeDir({ prefix }));
    try {
      expect(ck.config).toEqual({ nLayer: 2, nHead: 2, dModel: 16, dHead: 8, dMlp: 64, nCtx: 8, dVocab: 100, layerNormEps: 1e-5 });
      expect(ck.has('wte.weight')).toBe(true);
      expect(ck.info('h.1.mlp.c_fc.weight')).toMatchObject({ name: `${prefix}h.1.mlp.c_fc.weight`, shape: [16, 64], dtype: 'F32' });
      expect(Array.from(ck.read('h.0.ln_1.bias'))).toEqual(Array.from(W.get('h.0.ln_1.bias')));
      for (const [layer, j] of [[0, 0], [1, 5], [1, 63]]) {
        expect(Array.from(ck.ffKey(layer, j))).toEqual(column(W.get(`h.${layer}.mlp.c_fc.weight`), 64, j));
        expect(Array.from(ck.ffValue(layer, j))).toEqual(Array.from(W.get(`h.${layer}.mlp.c_proj.weight`).subarray(j * 16, (j + 1) * 16)));
      }
      expect(Array.from(ck.tokenEmbedding(99))).toEqual(Array.from(W.get('wte.weight').subarray(99 * 16, 100 * 16)));
      expect(ck.parameterBytes).toBe(base().reduce((a, t) => a + t.data.length * 4, 0));
    } finally {
      ck.close();
    }
  });

  test('HF buffers (attn.bias, attn.masked_bias, lm_head.weight) are ignored', () => {
    const extra: TensorToWrite[] = [];
    for (const l of [0, 1]) {
      extra.push({ name: `transformer.h.${l}.attn.bias`, shape: [1, 1, 8, 8], data: new Float32Array(64).fill(1) });
      extra.push({ name: `transformer.h.${l}.attn.masked_bias`, shape: [], data: [-1e4] });
    }
    extra.push({ name: 'lm_head.weight', shape: [100, 16], data: W.get('wte.weight') });
    const ck = Checkpoint.open(writeDir({ tensors: [...base().map((t) => ({ ...t, name: 'transformer.' + t.name })), ...extra] }));
    try {
      expect(ck.has('h.0.attn.bias')).toBe(false);
      expect(ck.has('h.1.attn.masked_bias')).toBe(false);
      expect(ck.has('lm_head.weight')).toBe(false);
      expect(ck.parameterBytes).toBe(base().reduce((a, t) => a + t.data.length * 4, 0));
    } finally {
      ck.close();
    }
  });

  test('without config.json the config is inferred from shapes (heads: d_model / 64, else 1)', () => {
    const ck = Checkpoint.open(writeDir({ config: null }));
    expect(ck.config).toEqual({ nLayer: 2, nHead: 1, dModel: 16, dHead: 16, dMlp: 64, nCtx: 8, dVocab: 100, layerNormEps: 1e-5 });
    ck.close();
    const w128 = randomRefWeights({ ...CFG, nLayer: 1, dModel: 128 }, 3);
    const ck2 = Checkpoint.open(writeDir({ tensors: w128.tensors(), config: null }));
    expect(ck2.config).toMatchObject({ nLayer: 1, nHead: 2, dModel: 128, dHead: 64, dMlp: 512 });
    ck2.close();
  });

  test('a partial config.json is completed from shapes', () => {
    const ck = Checkpoint.open(writeDir({ config: { n_head: 4 } }));
    expect(ck.config).toEqual({ nLayer: 2, nHead: 4, dModel: 16, dHead: 4, dMlp: 64, nCtx: 8, dVocab: 100, layerNormEps: 1e-5 });
    ck.close();
  });
});

describe('malformed checkpoints', () => {
  test('missing directory, a file, no model.safetensors → NOT_FOUND', async () => {
    expect(openErr(path.join(root, 'does-not-exist'))).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/does-not-exist does not exist/) });
    const file = path.join(root, 'plain-file');
    fs.writeFileSync(file, 'x');
    expect(openErr(file)).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/plain-file is not a directory/) });
    const empty = path.join(root, 'empty-dir');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'config.json'), JSON.stringify(CONFIG_JSON));
    const e = openErr(empty);
    expect(e.code).toBe('NOT_FOUND');
    expect(e.message).toMatch(/has no model\.safetensors/);
    // through the public loaders
    await expect(openCheckpoint(path.join(root, 'does-not-exist'))).rejects.toMatchObject({ name: 'SpError', code: 'NOT_FOUND' });
    await expect(gpt2(empty, { backend: 'cpu' })).rejects.toMatchObject({ name: 'SpError', code: 'NOT_FOUND' });
  });

  test('model.safetensors that is a directory → BAD_FILE', () => {
    const dir = path.join(root, 'st-is-dir');
    fs.mkdirSync(path.join(dir, 'model.safetensors'), { recursive: true });
    expect(openErr(dir).code).toBe('BAD_FILE');
  });

  const bad: Array<[string, () => string, string, RegExp]> = [
    ['missing tensor', () => writeDir({ tensors: without('h.1.attn.c_proj.bias') }), 'BAD_FILE', /missing tensor "h\.1\.attn\.c_proj\.bias"/],
    ['missing block', () => writeDir({ tensors: base().filter((t) => !t.name.startsWith('h.1.')) }), 'BAD_FILE', /missing tensor "h\.1\./],
    ['no wte', () => writeDir({ tensors: without('wte.weight') }), 'BAD_FILE', /no wte\.weight\/wpe\.weight: not a GPT-2 checkpoint/],
    ['wrong shape', () => writeDir({ tensors: [...without('h.0.ln_2.weight'), { name: 'h.0.ln_2.weight', shape: [17], data: new Float32Array(17) }] }), 'BAD_FILE', /"h\.0\.ln_2\.weight" has shape \[17\], expected \[16\]/],
    ['transposed matrix', () => writeDir({ tensors: [...without('h.0.mlp.c_fc.weight'), { name: 'h.0.mlp.c_fc.weight', shape: [64, 16], data: W.get('h.0.mlp.c_fc.weight') }] }), 'BAD_FILE', /"h\.0\.mlp\.c_fc\.weight" has shape \[64,16\], expected \[16,\d+\]/],
    ['1-D embedding', () => writeDir({ tensors: [...without('wte.weight'), { name: 'wte.weight', shape: [1600], data: W.get('wte.weight') }], config: null }), 'BAD_FILE', /must be 2-D/],
    ['config n_embd disagrees with the file', () => writeDir({ config: { ...CONFIG_JSON, n_embd: 32 } }), 'BAD_FILE', /"wte\.weight" has shape \[100,16\], expected \[100,32\]/],
    ['config vocab disagrees with the file', () => writeDir({ config: { ...CONFIG_JSON, vocab_size: 50257 } }), 'BAD_FILE', /"wte\.weight" has shape \[100,16\], expected \[50257,16\]/],
    ['config has fewer layers than the file', () => writeDir({ config: { ...CONFIG_JSON, n_layer: 1 } }), 'BAD_FILE', /"h\.1\.[\w.]+" belongs to block 1 but the config has 1 layers/],
    ['config has more layers than the file', () => writeDir({ config: { ...CONFIG_JSON, n_layer: 3 } }), 'BAD_FILE', /missing tensor "h\.2\./],
    ['same parameter with and without prefix', () => writeDir({ tensors: [...base(), { ...base()[0], name: 'transformer.' + base()[0].name }] }), 'BAD_FILE', /are the same parameter/],
    ['config.json not JSON', () => writeDir({ config: '{"n_layer": 2,' }), 'BAD_FILE', /cannot parse .*config\.json as JSON/],
    ['config.json null', () => writeDir({ config: 'null' }), 'BAD_FILE', /config\.json is not a JSON object/],
    ['config.json an array', () => writeDir({ config: '[2, 2]' }), 'BAD_FILE', /config\.json is not a JSON object/],
    ['n_head 0', () => writeDir({ config: { ...CONFIG_JSON, n_head: 0 } }), 'BAD_FILE', /n_head is 0, expected a positive integer/],
    ['negative n_head', () => writeDir({ config: { ...CONFIG_JSON, n_head: -2 } }), 'BAD_FILE', /n_head is -2/],
    ['fractional n_layer', () => writeDir({ config: { ...CONFIG_JSON, n_layer: 1.5 } }), 'BAD_FILE', /n_layer is 1\.5/],
    ['string n_embd', () => writeDir({ config: { ...CONFIG_JSON, n_embd: '16' } }), 'BAD_FILE', /n_embd is "16"/],
    ['layer_norm_epsilon 0', () => writeDir({ config: { ...CONFIG_JSON, layer_norm_epsilon: 0 } }), 'BAD_FILE', /layer_norm_epsilon is 0, expected a positive number/],
    ['n_head not dividing n_embd', () => writeDir({ config: { ...CONFIG_JSON, n_head: 3 } }), 'BAD_FILE', /n_embd 16 is not divisible by n_head 3/],
    ['unsupported activation', () => writeDir({ config: { ...CONFIG_JSON, activation_function: 'relu' } }), 'UNSUPPORTED', /activation_function "relu" is not supported/],
    [
      'truncated model.safetensors',
      () => {
        const dir = writeDir();
        const p = path.join(dir, 'model.safetensors');
        fs.truncateSync(p, fs.statSync(p).size - 10);
        return dir;
      },
      'BAD_FILE',
      /truncated\?/,
    ],
    [
      'empty model.safetensors',
      () => {
        const dir = writeDir();
        fs.writeFileSync(path.join(dir, 'model.safetensors'), '');
        return dir;
      },
      'BAD_FILE',
      /file is empty/,
    ],
  ];

  test.each(bad)('%s', (_label, make, code, pattern) => {
    const e = openErr(make());
    expect({ code: e.code, message: e.message }).toEqual({ code, message: expect.stringMatching(pattern) });
  });

  test('failed opens close the file', () => {
    const dir = writeDir({ tensors: without('ln_f.bias') });
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 30; i++) openErr(dir);
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });

  test('out-of-range neurons, layers and token ids → OUT_OF_RANGE', () => {
    const ck = Checkpoint.open(writeDir());
    try {
      for (const fn of [() => ck.ffKey(2, 0), () => ck.ffKey(-1, 0), () => ck.ffKey(0, 64), () => ck.ffValue(0, 1.5), () => ck.ffValue(1, -1), () => ck.tokenEmbedding(100), () => ck.tokenEmbedding(-1)]) {
        expectSpError(fn, 'OUT_OF_RANGE');
      }
    } finally {
      ck.close();
    }
  });
});

test('Checkpoint.open + ffKey/ffValue on a 1.7 GB checkpoint read a few KB', () => {
  // d_model 8192, d_mlp 9216: c_fc is [8192, 9216] (302 MB), the whole file ~1.7 GB (sparse).
  const d = 8192;
  const m = 9216;
  const dir = path.join(root, 'big');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ n_layer: 1, n_head: 64, n_embd: d, n_inner: m, n_positions: 2, vocab_size: 4 }));
  const t = (name: string, shape: number[]) => ({ name, shape });
  const big = writeSparseSafetensors(path.join(dir, 'model.safetensors'), [
    t('wte.weight', [4, d]), t('wpe.weight', [2, d]),
    t('h.0.ln_1.weight', [d]), t('h.0.ln_1.bias', [d]),
    t('h.0.attn.c_attn.weight', [d, 3 * d]), t('h.0.attn.c_attn.bias', [3 * d]),
    t('h.0.attn.c_proj.weight', [d, d]), t('h.0.attn.c_proj.bias', [d]),
    t('h.0.ln_2.weight', [d]), t('h.0.ln_2.bias', [d]),
    t('h.0.mlp.c_fc.weight', [d, m]), t('h.0.mlp.c_fc.bias', [m]),
    t('h.0.mlp.c_proj.weight', [m, d]), t('h.0.mlp.c_proj.bias', [d]),
    t('ln_f.weight', [d]), t('ln_f.bias', [d]),
  ]);
  const j = 9000;
  const rows = Array.from({ length: d }, (_, r) => r);
  big.poke('h.0.mlp.c_fc.weight', rows.map((r) => r * m + j), rows.map((r) => r / 8));
  big.poke('h.0.mlp.c_proj.weight', rows.map((c) => j * d + c), rows.map((c) => -c));
  expect(big.size).toBeGreaterThan(1.6e9);

  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const { result, bytes } = countReadBytes(() => {
    const ck = Checkpoint.open(dir);
    try {
      return { key: ck.ffKey(0, j), value: ck.ffValue(0, j), config: ck.config };
    } finally {
      ck.close();
    }
  });
  const growth = process.memoryUsage().rss - rss0;
  expect(result.config).toMatchObject({ dModel: d, dMlp: m, nHead: 64 });
  expect(Array.from(result.key)).toEqual(rows.map((r) => r / 8));
  expect(Array.from(result.value)).toEqual(rows.map((c) => -c));
  // header + one float per row of c_fc + one row of c_proj
  expect(bytes).toBeLessThanOrEqual(big.headerBytes + 2 * d * 4);
  expect(growth).toBeLessThan(64 << 20);
  fs.rmSync(dir, { recursive: true });
});
