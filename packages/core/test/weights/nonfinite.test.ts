/**
 * NaN/±Infinity in a checkpoint (a bad fp16 conversion, say) is refused at load with one line naming
 * the tensor, the count and the first offender, on every load path (packed matrices, their biases,
 * the unembedding, small tensors on the tfjs heap; F32 read in place, F16/BF16 decoded; the
 * $SP_MATMUL=tfjs layout); allowNonfinite loads it anyway. Non-finite embeds/inject vectors are
 * refused likewise, naming the position.
 */
import fs from 'node:fs';
import { gpt2, SafetensorsFile, SpError, type DType } from '@sp/core';
import { expectSpError } from '../helpers/errors.js';
import { fixtureDir, tmpDir } from '../helpers/fixtures.js';
import { writeRandomGpt2 } from '../helpers/random-gpt2.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Bit patterns of NaN, +Inf, -Inf per dtype. */
const BITS: Record<DType, Record<'NaN' | 'Infinity' | '-Infinity', number>> = {
  F32: { NaN: 0x7fc00000, Infinity: 0x7f800000, '-Infinity': 0xff800000 },
  F16: { NaN: 0x7e00, Infinity: 0x7c00, '-Infinity': 0xfc00 },
  BF16: { NaN: 0x7fc0, Infinity: 0x7f80, '-Infinity': 0xff80 },
};

// One clean random model per dtype (F16/BF16 encoding is slow), copied for each case.
const clean = new Map<string, string>();

/** A random 2-layer model with `values` written over elements `at` (row-major) of tensor `name`. */
function poisoned(dtype: DType, name: string, at: number[], values: (keyof (typeof BITS)['F32'])[], prefix = false): string {
  const key = `${dtype}${prefix}`;
  if (!clean.has(key)) {
    const { dir } = writeRandomGpt2({ nLayer: 2, nHead: 4, dModel: 32, dtype, prefix, seed: 5 });
    dirs.push(dir);
    clean.set(key, dir);
  }
  const dir = tmpDir('sp-nonfinite-');
  dirs.push(dir);
  fs.cpSync(clean.get(key)!, dir, { recursive: true });
  const file = `${dir}/model.safetensors`;
  const st = SafetensorsFile.open(file);
  const t = st.info(name);
  st.close();
  expect(t.dtype).toBe(dtype);
  const fd = fs.openSync(file, 'r+');
  const size = dtype === 'F32' ? 4 : 2;
  at.forEach((idx, i) => {
    const b = Buffer.alloc(size);
    if (size === 4) b.writeUInt32LE(BITS[dtype][values[i]]);
    else b.writeUInt16LE(BITS[dtype][values[i]]);
    fs.writeSync(fd, b, 0, size, t.begin + idx * size);
  });
  fs.closeSync(fd);
  return dir;
}

async function loadError(dir: string, opts = {}): Promise<SpError> {
  const e = await gpt2(dir, { backend: 'wasm', download: false, ...opts }).then(
    (m) => (m.dispose(), undefined),
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(SpError);
  expect((e as SpError).message).not.toMatch(/[\r\n]/);
  return e as SpError;
}

const cases: [string, DType, string, number[], (keyof (typeof BITS)['F32'])[]][] = [
  // packed matrix, F32 read through the arena's scratch
  ['F32 c_fc weight', 'F32', 'h.1.mlp.c_fc.weight', [17, 40, 4095], ['NaN', 'Infinity', 'NaN']],
  // the unembedding, F32 read straight into the arena, offender in its last block
  ['F32 wte (last row)', 'F32', 'wte.weight', [50257 * 32 - 1], ['-Infinity']],
  ['F32 packed bias', 'F32', 'h.0.attn.c_attn.bias', [95], ['Infinity']],
  // a small tensor on the tfjs heap
  ['F32 layer norm', 'F32', 'h.1.ln_2.weight', [0], ['NaN']],
  ['F32 wpe', 'F32', 'wpe.weight', [33, 34], ['NaN', '-Infinity']],
  // decoded F16/BF16: packed (transposed and row-major) and heap tensors
  ['F16 attn c_proj', 'F16', 'h.0.attn.c_proj.weight', [1000], ['Infinity']],
  ['F16 wte', 'F16', 'wte.weight', [5, 6], ['NaN', 'NaN']],
  ['F16 ln_f bias', 'F16', 'ln_f.bias', [31], ['-Infinity']],
  ['BF16 mlp c_proj', 'BF16', 'h.1.mlp.c_proj.weight', [3, 4000], ['NaN', 'Infinity']],
  ['BF16 wpe', 'BF16', 'wpe.weight', [7], ['NaN']],
];

test.each(cases)('%s: refused, naming the tensor, the count and the first value', async (_label, dtype, name, at, values) => {
  const dir = poisoned(dtype, name, at, values);
  const e = await loadError(dir);
  expect(e.code).toBe('NONFINITE_WEIGHTS');
  const n = at.length;
  expect(e.message).toBe(
    `${dir}/model.safetensors: tensor ${name} has ${n} non-finite value${n === 1 ? '' : 's'} (first at index ${at[0]}: ${values[0]}); load with allowNonfinite: true (--allow-nonfinite) to skip this check`,
  );
});

test('the file name of the tensor is reported (transformer. prefix)', async () => {
  const dir = poisoned('F16', 'transformer.h.0.mlp.c_fc.weight', [12], ['NaN'], true);
  expect((await loadError(dir)).message).toContain('tensor transformer.h.0.mlp.c_fc.weight has 1 non-finite value (first at index 12: NaN)');
});

test('allowNonfinite: true loads the checkpoint, and the NaN reaches the logits', async () => {
  const dir = poisoned('F32', 'h.1.mlp.c_fc.weight', [17], ['NaN']);
  const model = await gpt2(dir, { backend: 'wasm', download: false, allowNonfinite: true });
  try {
    const t = model.forward([1, 2, 3]);
    const logits = t.dataSync();
    t.dispose();
    expect(logits.some((x) => Number.isNaN(x))).toBe(true);
  } finally {
    model.dispose();
  }
});

test('a clean checkpoint loads (finite extremes included: ±max, subnormals, -0)', async () => {
  const { dir } = writeRandomGpt2({ nLayer: 1, nHead: 4, dModel: 32, seed: 9 });
  dirs.push(dir);
  const t = (() => {
    const st = SafetensorsFile.open(`${dir}/model.safetensors`);
    try {
      return st.info('h.0.mlp.c_fc.weight');
    } finally {
      st.close();
    }
  })();
  const fd = fs.openSync(`${dir}/model.safetensors`, 'r+');
  const b = Buffer.alloc(16);
  [0x7f7fffff, 0xff7fffff, 0x00000001, 0x80000000].forEach((v, i) => b.writeUInt32LE(v, 4 * i));
  fs.writeSync(fd, b, 0, 16, t.begin);
  fs.closeSync(fd);
  const model = await gpt2(dir, { backend: 'wasm', download: false });
  model.dispose();
});

describe('SP_MATMUL=tfjs (weights as tfjs tensors)', () => {
  beforeAll(() => (process.env.SP_MATMUL = 'tfjs'));
  afterAll(() => delete process.env.SP_MATMUL);
  test.each([
    ['F32 wte (transposed on the heap)', 'F32', 'wte.weight', [100], ['NaN']],
    ['F32 c_attn weight (read in place)', 'F32', 'h.0.attn.c_attn.weight', [9, 10], ['Infinity', 'NaN']],
    ['F16 wte (decoded)', 'F16', 'wte.weight', [77], ['-Infinity']],
    ['BF16 c_fc weight (decoded)', 'BF16', 'h.1.mlp.c_fc.weight', [2], ['NaN']],
  ] as typeof cases)('%s: refused', async (_label, dtype, name, at, values) => {
    const e = await loadError(poisoned(dtype, name, at, values));
    expect(e.code).toBe('NONFINITE_WEIGHTS');
    expect(e.message).toContain(`tensor ${name} has ${at.length} non-finite value${at.length === 1 ? '' : 's'} (first at index ${at[0]}: ${values[0]})`);
  });
});

describe('embeds / inject vectors', () => {
  let model: Awaited<ReturnType<typeof gpt2>>;
  beforeAll(async () => (model = await gpt2(fixtureDir('tiny-gpt2'), { backend: 'wasm', download: false })));
  afterAll(() => model.dispose());
  const vec = (i: number, v: unknown) => {
    const a: unknown[] = Array.from({ length: model.config.dModel }, () => 0.5);
    a[i] = v;
    return a as number[];
  };

  test('NaN, ±Infinity and non-numbers are refused, naming the position and the index', () => {
    const ids = [464, 3139, 286];
    expectSpError(() => model.forward(ids, { embeds: [{ pos: 1, vector: vec(5, NaN) }] }), 'BAD_INPUT', /^embedding override at position 1: vector\[5\] is NaN; every value must be a finite number$/);
    expectSpError(() => model.forward(ids, { embeds: [{ pos: 2, vector: Float32Array.from(vec(0, -Infinity)) }] }), 'BAD_INPUT', /^embedding override at position 2: vector\[0\] is -Infinity;/);
    expectSpError(() => model.forward(ids, { inject: [{ layer: 1, pos: 0, vector: vec(3, Infinity) }] }), 'BAD_INPUT', /^injection at position 0: vector\[3\] is Infinity;/);
    expectSpError(() => model.forward(ids, { inject: [{ layer: 0, pos: 2, vector: vec(7, '0.5') }] }), 'BAD_INPUT', /^injection at position 2: vector\[7\] is "0\.5";/);
    expectSpError(() => model.forward(ids, { embeds: [{ pos: 0, vector: vec(1, undefined) }] }), 'BAD_INPUT', /vector\[1\] is undefined;/);
    expectSpError(() => model.forward(ids, { embeds: [{ pos: 0, vector: undefined as unknown as number[] }] }), 'BAD_INPUT', /^embedding override at position 0: vector must be an array of numbers$/);
  });

  test('finite vectors still work (and change the output)', () => {
    const ids = [464, 3139, 286];
    const plain = model.forward(ids);
    const over = model.forward(ids, { embeds: [{ pos: 1, vector: vec(5, 3) }] });
    const [a, b] = [plain.dataSync(), over.dataSync()];
    plain.dispose();
    over.dispose();
    expect(a.some((x, i) => x !== b[i])).toBe(true);
  });
});
