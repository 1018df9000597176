/**
 * The safetensors reader's strictness (every malformed file → SpError BAD_FILE, one line), the
 * writer's F16/BF16 rounding (checked against an independent decoder), partial reads, and that
 * reading one column of a large tensor reads only that column.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodeSafetensors, SafetensorsFile, SpError, writeSafetensors, type DType } from '@sp/core';
import { bf16ToNumber, f16ToNumber, parseSafetensors } from '../reference/safetensors-mini.js';
import { mulberry32 } from '../reference/random-model.js';
import { tmpDir } from '../helpers/fixtures.js';
import { countReadBytes, writeSparseSafetensors } from '../helpers/sparse-safetensors.js';

let dir: string;
beforeAll(() => {
  dir = tmpDir('sp-safetensors-');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
function writeFile(bytes: Uint8Array): string {
  const p = path.join(dir, `f${fileNo++}.safetensors`);
  fs.writeFileSync(p, bytes);
  return p;
}

/** u64 header length | header | data, with the header given as an object or raw text. */
function raw(header: unknown, data: Uint8Array | number = 0, opts: { headerLen?: bigint } = {}): Buffer {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.headerLen ?? BigInt(h.length));
  return Buffer.concat([len, h, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]);
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Opening `bytes` must fail with SpError(code), a one-line message matching `pattern` and naming the file. */
function expectRejected(bytes: Uint8Array, pattern: RegExp, code = 'BAD_FILE'): void {
  const p = writeFile(bytes);
  const e = caught(() => SafetensorsFile.open(p));
  expect(e).toBeInstanceOf(SpError);
  expect({ code: (e as SpError).code, message: (e as SpError).message }).toEqual({ code, message: expect.stringMatching(pattern) });
  expect((e as SpError).message).not.toMatch(/[\r\n]/);
  expect((e as SpError).message).toContain(p);
}

const openFds = (): number => fs.readdirSync('/proc/self/fd').length;

describe('strict parsing: malformed files are BAD_FILE with one line', () => {
  const f32 = (shape: number[], off: [number, number]) => ({ dtype: 'F32', shape, data_offsets: off });
  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['empty file', () => Buffer.alloc(0), /file is empty/],
    ['shorter than 8 bytes', () => Buffer.from([1, 0, 0, 0, 0]), /5 bytes, shorter than the 8-byte/],
    ['header length beyond the file', () => raw('{}', 0, { headerLen: 1000n }), /header length 1000 exceeds file size 10/],
    ['absurd header length', () => raw('{}', 0, { headerLen: 2n ** 63n }), /header length \d+ is implausible/],
    ['zero header length', () => raw('', 0), /not valid JSON/],
    ['invalid JSON', () => raw('{"a": {"dtype": "F32",', 0), /not valid JSON/],
    ['JSON array header', () => raw([]), /not a JSON object/],
    ['JSON null header', () => raw('null'), /not a JSON object/],
    ['entry that is not an object', () => raw({ a: 5 }), /tensor "a"|"a" is not an object/],
    ['entry that is null', () => raw({ a: null }), /"a" is not an object/],
    ['dtype I64', () => raw({ w: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16), /"w" has unsupported dtype "I64"/],
    ['dtype F64', () => raw({ w: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, 16), /unsupported dtype "F64"/],
    ['dtype U8', () => raw({ w: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, 2), /unsupported dtype "U8"/],
    ['dtype BOOL', () => raw({ w: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] } }, 2), /unsupported dtype "BOOL"/],
    ['lower-case dtype', () => raw({ w: { dtype: 'f32', shape: [1], data_offsets: [0, 4] } }, 4), /unsupported dtype "f32"/],
    ['missing dtype', () => raw({ w: { shape: [1], data_offsets: [0, 4] } }, 4), /"w" has unsupported dtype undefined/],
    ['shape not an array', () => raw({ w: f32(2 as unknown as number[], [0, 8]) }, 8), /"w" has an invalid shape/],
    ['negative dimension', () => raw({ w: f32([-2], [0, 8]) }, 8), /invalid shape/],
    ['fractional dimension', () => raw({ w: f32([1.5], [0, 6]) }, 6), /invalid shape/],
    ['string dimension', () => raw({ w: f32(['2'] as unknown as number[], [0, 8]) }, 8), /invalid shape/],
    ['one offset', () => raw({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, 4), /"w" has invalid data_offsets/],
    ['negative offset', () => raw({ w: f32([1], [-4, 0]) }, 4), /invalid data_offsets/],
    ['end before begin', () => raw({ w: f32([1], [8, 4]) }, 8), /invalid data_offsets/],
    ['missing offsets', () => raw({ w: { dtype: 'F32', shape: [1] } }, 4), /invalid data_offsets/],
    ['shape/byte-length mismatch', () => raw({ w: f32([2, 2], [0, 12]) }, 12), /"w" spans 12 bytes but shape \[2,2\] of F32 needs 16/],
    ['offsets beyond the data', () => raw({ w: f32([4], [0, 16]) }, 12), /"w" ends at byte 16 beyond the 12-byte data section/],
    ['overlapping tensors', () => raw({ a: f32([4], [0, 16]), b: f32([4], [8, 24]) }, 24), /"b" overlaps another tensor/],
    ['hole between tensors', () => raw({ a: f32([2], [0, 8]), b: f32([2], [12, 20]) }, 20), /hole of 4 bytes before tensor "b"/],
    ['hole at the start', () => raw({ a: f32([2], [4, 12]) }, 12), /hole of 4 bytes before tensor "a"/],
    ['trailing bytes', () => raw({ a: f32([2], [0, 8]) }, 11), /3 trailing bytes after the last tensor/],
    ['data without tensors', () => raw({}, 4), /4 trailing bytes/],
    ['metadata with a number', () => raw({ __metadata__: { a: 1 } }), /__metadata__ must map strings to strings/],
    ['metadata as an array', () => raw({ __metadata__: ['x'] }), /__metadata__ must map strings to strings/],
    ['metadata null', () => raw({ __metadata__: null }), /__metadata__ must map strings to strings/],
    ['newline in a tensor name', () => raw({ 'evil\nname': { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, 8), /"evil\\nname" has unsupported dtype "I64"/],
    [
      'truncated file (valid file minus its last 3 bytes)',
      () => {
        const ok = encodeSafetensors([{ name: 'a', shape: [3], data: [1, 2, 3] }, { name: 'b', shape: [2, 2], data: [1, 2, 3, 4], dtype: 'F16' }]);
        return ok.subarray(0, ok.length - 3);
      },
      /"b" ends at byte 20 beyond the 17-byte data section \(truncated\?\)/,
    ],
    [
      'truncated inside the header',
      () => {
        const ok = encodeSafetensors([{ name: 'a', shape: [3], data: [1, 2, 3] }]);
        return ok.subarray(0, 20);
      },
      /exceeds file size 20 \(truncated\?\)/,
    ],
  ];

  test.each(cases)('%s', (_label, make, pattern) => {
    expectRejected(make(), pattern);
  });

  test('failed opens close their file descriptor', () => {
    const p = writeFile(raw({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 9));
    const before = openFds();
    for (let i = 0; i < 50; i++) expect(caught(() => SafetensorsFile.open(p))).toBeInstanceOf(SpError);
    expect(openFds()).toBe(before);
  });

  test('missing file is NOT_FOUND, a directory is BAD_FILE', () => {
    const e1 = caught(() => SafetensorsFile.open(path.join(dir, 'nope.safetensors')));
    expect(e1).toBeInstanceOf(SpError);
    expect((e1 as SpError).code).toBe('NOT_FOUND');
    const sub = path.join(dir, 'adir.safetensors');
    fs.mkdirSync(sub);
    const e2 = caught(() => SafetensorsFile.open(sub));
    expect(e2).toBeInstanceOf(SpError);
    expect((e2 as SpError).code).toBe('BAD_FILE');
    expect((e2 as SpError).message).toBe(`${sub} is not a regular file`);
  });
});

describe('valid files', () => {
  test('__metadata__, scalars, empty tensors and dtypes are kept', () => {
    const p = writeFile(
      encodeSafetensors(
        [
          { name: 'z', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
          { name: 'scalar', shape: [], data: [-1e4] },
          { name: 'empty', shape: [0, 4], data: [] },
          { name: 'h', shape: [3], data: [0.5, -2, 65504], dtype: 'F16' },
          { name: 'b', shape: [1, 2], data: [1, -0.25], dtype: 'BF16' },
        ],
        { format: 'pt', note: 'x' },
      ),
    );
    const f = SafetensorsFile.open(p);
    try {
      expect(f.metadata).toEqual({ format: 'pt', note: 'x' });
      expect([...f.tensors.keys()].sort()).toEqual(['b', 'empty', 'h', 'scalar', 'z']);
      expect(f.info('z')).toMatchObject({ dtype: 'F32', shape: [2, 3] });
      expect(f.info('h')).toMatchObject({ dtype: 'F16', shape: [3] });
      expect(Array.from(f.read('z'))).toEqual([1, 2, 3, 4, 5, 6]);
      expect(Array.from(f.read('scalar'))).toEqual([-1e4]);
      expect(Array.from(f.read('empty'))).toEqual([]);
      expect(Array.from(f.read('h'))).toEqual([0.5, -2, 65504]);
      expect(Array.from(f.read('b'))).toEqual([1, -0.25]);
      const e = caught(() => f.read('missing'));
      expect((e as SpError).code).toBe('NOT_FOUND');
    } finally {
      f.close();
    }
    expect((caught(() => f.read('z')) as SpError).code).toBe('BAD_INPUT'); // closed
  });

  test('files without tensors are valid', () => {
    for (const header of [{}, { __metadata__: { a: 'b' } }]) {
      const f = SafetensorsFile.open(writeFile(raw(header)));
      expect(f.tensors.size).toBe(0);
      f.close();
    }
  });

  test('the writer sorts keys, aligns the data to 8 bytes, and an independent reader agrees', () => {
    const bytes = encodeSafetensors([{ name: 'b.w', shape: [2], data: [3, 4] }, { name: 'a.w', shape: [1], data: [7] }], { k: 'v' });
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(Object.keys(JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')))).toEqual(['__metadata__', 'a.w', 'b.w']);
    const mini = parseSafetensors(bytes);
    expect(mini.metadata).toEqual({ k: 'v' });
    expect(Array.from(mini.get('a.w').data)).toEqual([7]);
    expect(Array.from(mini.get('b.w').data)).toEqual([3, 4]);
  });

  test('the writer rejects bad tensors with BAD_INPUT', () => {
    const bad = (t: Parameters<typeof encodeSafetensors>[0]) => caught(() => encodeSafetensors(t)) as SpError;
    expect(bad([{ name: 'a', shape: [2, 2], data: [1, 2, 3] }]).code).toBe('BAD_INPUT');
    expect(bad([{ name: 'a', shape: [1], data: [1] }, { name: 'a', shape: [1], data: [2] }]).message).toMatch(/"a" is reserved or used twice/);
    expect(bad([{ name: '__metadata__', shape: [1], data: [1] }]).code).toBe('BAD_INPUT');
    expect(bad([{ name: 'a', shape: [-1, -2], data: [1, 2] }]).message).toMatch(/non-negative integers/);
  });

  test('writeSafetensors writes what encodeSafetensors returns', () => {
    const t = [{ name: 'x', shape: [2], data: [1.5, -3], dtype: 'BF16' as DType }];
    const p = path.join(dir, 'w.safetensors');
    writeSafetensors(p, t, { a: 'b' });
    expect(fs.readFileSync(p).equals(encodeSafetensors(t, { a: 'b' }))).toBe(true);
  });
});

// ---- F16 / BF16 ----

const HALF: Record<'F16' | 'BF16', { decode: (bits: number) => number; expBits: number; mantBits: number }> = {
  F16: { decode: f16ToNumber, expBits: 5, mantBits: 10 },
  BF16: { decode: (b) => bf16ToNumber(b), expBits: 8, mantBits: 7 },
};

/** Bit patterns the writer produces for `values` stored as `dtype`. */
function writtenBits(values: ArrayLike<number>, dtype: 'F16' | 'BF16'): Uint16Array {
  const bytes = encodeSafetensors([{ name: 'x', shape: [values.length], data: values, dtype }]);
  const n = Number(bytes.readBigUInt64LE(0));
  const data = bytes.subarray(8 + n);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = data.readUInt16LE(2 * i);
  return out;
}

const isNaNBits = (bits: number, expBits: number, mantBits: number): boolean => ((bits >> mantBits) & ((1 << expBits) - 1)) === (1 << expBits) - 1 && (bits & ((1 << mantBits) - 1)) !== 0;

/**
 * `bits` must be the correctly rounded (nearest, ties to even) encoding of `x`: no neighbouring
 * code is nearer, a tie picks the even code, and |x| past the overflow midpoint gives infinity.
 */
function checkRounded(x: number, bits: number, dtype: 'F16' | 'BF16'): string | undefined {
  const { decode, expBits, mantBits } = HALF[dtype];
  if (Number.isNaN(x)) return isNaNBits(bits, expBits, mantBits) ? undefined : `NaN -> ${bits.toString(16)}`;
  const signBit = 1 << (expBits + mantBits);
  const infBits = ((1 << expBits) - 1) << mantBits;
  const mag = bits & (signBit - 1);
  if (x !== 0 && (bits & signBit ? 1 : 0) !== (x < 0 ? 1 : 0)) return `${x}: wrong sign`;
  if (Object.is(x, -0) && bits !== signBit) return `-0 -> ${bits.toString(16)}`;
  const y = decode(bits);
  const err = Math.abs(x - y);
  if (mag === infBits) {
    // infinity: x must be infinite or at/after the midpoint between the largest finite value and 2^(emax+1)
    const maxFinite = decode(infBits - 1);
    const next = 2 ** (2 ** (expBits - 1)); // the value the exponent would reach
    return !Number.isFinite(x) || Math.abs(x) >= (maxFinite + next) / 2 ? undefined : `${x} -> inf`;
  }
  if (!Number.isFinite(x)) return `${x} -> finite ${y}`;
  for (const nb of [mag - 1, mag + 1]) {
    if (nb < 0 || nb >= infBits) continue;
    const e2 = Math.abs(x - decode((bits & signBit) | nb));
    if (e2 < err) return `${x} -> ${y} but ${decode((bits & signBit) | nb)} is nearer`;
    if (e2 === err && mag % 2 === 1) return `${x}: tie not rounded to even (${y})`;
  }
  if (mag === infBits - 1) {
    const next = 2 ** (2 ** (expBits - 1));
    if (Math.abs(x) >= (Math.abs(y) + next) / 2) return `${x} should overflow to infinity`;
  }
  return undefined;
}

describe.each(['F16', 'BF16'] as const)('%s', (dtype) => {
  const { decode, expBits, mantBits } = HALF[dtype];

  test('every bit pattern decodes like the independent decoder', () => {
    const data = Buffer.alloc(65536 * 2);
    for (let i = 0; i < 65536; i++) data.writeUInt16LE(i, 2 * i);
    const f = SafetensorsFile.open(writeFile(raw({ x: { dtype, shape: [65536], data_offsets: [0, data.length] } }, data)));
    const got = f.read('x');
    f.close();
    const bad: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const want = Math.fround(decode(i));
      if (!(Object.is(got[i], want) || (Number.isNaN(want) && Number.isNaN(got[i])))) bad.push(i);
    }
    expect(bad).toEqual([]);
  });

  test('every representable value is written back to its own bit pattern (±0, ±inf, subnormals; NaN stays NaN)', () => {
    const values = Array.from({ length: 65536 }, (_, i) => decode(i));
    const bits = writtenBits(values, dtype);
    const bad: string[] = [];
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(values[i])) {
        if (!isNaNBits(bits[i], expBits, mantBits)) bad.push(`${i.toString(16)}: NaN -> ${bits[i].toString(16)}`);
      } else if (bits[i] !== i) bad.push(`${i.toString(16)} -> ${bits[i].toString(16)}`);
    }
    expect(bad).toEqual([]);
  });

  test('float32 values round to nearest, ties to even (random, subnormal range, overflow edge)', () => {
    const rnd = mulberry32(dtype === 'F16' ? 1 : 2);
    const f32 = new Float32Array(60000);
    const maxExp = 2 ** (expBits - 1); // 16 or 128
    const minExp = 2 - maxExp - mantBits - 2; // a little below the smallest subnormal
    for (let i = 0; i < f32.length; i++) {
      const e = Math.floor(minExp + rnd() * (maxExp + 1 - minExp));
      f32[i] = (rnd() < 0.5 ? -1 : 1) * (1 + rnd()) * 2 ** e;
    }
    // exact midpoints between neighbouring codes (ties) for a range of codes
    const ties: number[] = [];
    for (let c = 0; c < (1 << (expBits + mantBits)) - (1 << mantBits) - 1; c += 37) ties.push((decode(c) + decode(c + 1)) / 2);
    const values = [...Array.from(f32), ...ties.filter((t) => Math.fround(t) === t), 0, -0, Infinity, -Infinity, NaN, 3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45];
    const bits = writtenBits(values, dtype);
    const bad = values.map((x, i) => checkRounded(x, bits[i], dtype)).filter((m) => m !== undefined);
    expect(bad).toEqual([]);
  });

  test('float64 input is rounded once, not via float32', () => {
    // 1 + half an ulp + a hair: float32 would drop the hair and produce a tie that rounds down.
    const ulp = 2 ** -mantBits;
    const values = [1 + ulp / 2 + 2 ** -40, -(1 + ulp / 2 + 2 ** -40), 1 + ulp / 2 - 2 ** -40, 0.1, Math.PI, 1e-300, -1e300, 2 ** -30 * 1.0000001];
    const bits = writtenBits(values, dtype);
    const bad = values.map((x, i) => checkRounded(x, bits[i], dtype)).filter((m) => m !== undefined);
    expect(bad).toEqual([]);
    expect(decode(bits[0])).toBe(1 + ulp);
  });
});

test('F16 edge cases by value', () => {
  const cases: Array<[number, number]> = [
    [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00], [-1e6, 0xfc00],
    [2 ** -24, 0x0001], [2 ** -25, 0x0000], [-(2 ** -25), 0x8000], [2 ** -25 * 1.01, 0x0001], [1.5 * 2 ** -24, 0x0002], [2.5 * 2 ** -24, 0x0002],
    [1023.5 * 2 ** -24, 0x0400], [2 ** -14, 0x0400], [1e-10, 0x0000], [-1e-10, 0x8000],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [-0, 0x8000], [Infinity, 0x7c00], [-Infinity, 0xfc00],
  ];
  const bits = writtenBits(cases.map(([x]) => x), 'F16');
  expect(cases.map(([x], i) => [x, bits[i]])).toEqual(cases);
});

test('BF16 edge cases by value', () => {
  const cases: Array<[number, number]> = [
    [1, 0x3f80], [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [-2, 0xc000], [3.3895313892515355e38, 0x7f7f], [3.4028234663852886e38, 0x7f80],
    [2 ** -133, 0x0001], [2 ** -126, 0x0080], [-0, 0x8000], [Infinity, 0x7f80], [-Infinity, 0xff80],
  ];
  const bits = writtenBits(cases.map(([x]) => x), 'BF16');
  expect(cases.map(([x], i) => [x, bits[i]])).toEqual(cases);
});

test('F32 round-trips exactly, including NaN, ±inf, -0 and subnormals', () => {
  const values = new Float32Array([0, -0, 1, -1.5, 3.4028234663852886e38, 1.401298464324817e-45, -1.1754942106924411e-38, Infinity, -Infinity, NaN, Math.fround(Math.PI)]);
  const f = SafetensorsFile.open(writeFile(encodeSafetensors([{ name: 'x', shape: [values.length], data: values }])));
  const got = f.read('x');
  f.close();
  expect(Array.from(got)).toEqual(Array.from(values));
  expect(Object.is(got[1], -0)).toBe(true);
});

// ---- partial reads ----

describe.each(['F32', 'F16', 'BF16'] as const)('partial reads (%s)', (dtype) => {
  const R = 37;
  const C = 53;
  let f: SafetensorsFile;
  let full: Float32Array;
  beforeAll(() => {
    const rnd = mulberry32(5);
    const data = Float32Array.from({ length: R * C }, () => rnd() * 4 - 2);
    f = SafetensorsFile.open(writeFile(encodeSafetensors([{ name: 'pad', shape: [3], data: [1, 2, 3], dtype }, { name: 'm', shape: [R, C], data, dtype }, { name: 'v', shape: [5], data: [1, 2, 3, 4, 5], dtype }])));
    full = f.read('m');
  });
  afterAll(() => f.close());

  test('readRow / readColumn / readRange equal the full read sliced', () => {
    for (let r = 0; r < R; r++) expect(Array.from(f.readRow('m', r))).toEqual(Array.from(full.subarray(r * C, (r + 1) * C)));
    for (let c = 0; c < C; c++) expect(Array.from(f.readColumn('m', c))).toEqual(Array.from({ length: R }, (_, r) => full[r * C + c]));
    for (const [s, n] of [[0, 0], [0, 1], [17, 100], [R * C - 1, 1], [0, R * C]]) expect(Array.from(f.readRange('m', s, n))).toEqual(Array.from(full.subarray(s, s + n)));
  });

  test('out-of-range and malformed requests are SpErrors', () => {
    const code = (fn: () => unknown) => (caught(fn) as SpError | undefined)?.code;
    expect(code(() => f.readRow('m', R))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readRow('m', -1))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readRow('m', 1.5))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readColumn('m', C))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readColumn('m', 0.5))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readRange('m', R * C, 1))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readRange('m', -1, 1))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readRange('m', 0.5, 1))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readRange('m', 0, 2.5))).toBe('OUT_OF_RANGE');
    expect(code(() => f.readColumn('v', 0))).toBe('BAD_INPUT');
    expect(code(() => f.readRow('nope', 0))).toBe('NOT_FOUND');
  });
});

test('readColumn of a tensor with rows wider than the read chunk', () => {
  const R = 3;
  const C = 1_100_000; // 4.4 MB per F32 row
  const data = new Float32Array(R * C);
  for (let i = 0; i < data.length; i++) data[i] = (i % 1013) - 500;
  const f = SafetensorsFile.open(writeFile(encodeSafetensors([{ name: 'w', shape: [R, C], data }])));
  try {
    for (const c of [0, 1, 777_777, C - 1]) expect(Array.from(f.readColumn('w', c))).toEqual([data[c], data[C + c], data[2 * C + c]]);
  } finally {
    f.close();
  }
});

// ---- laziness on a large file ----

test('reading one column of a 302 MB tensor reads ~32 KB, not the file', () => {
  const R = 8192;
  const C = 9216;
  const col = 4321;
  const name = 'h.0.mlp.c_fc.weight';
  const big = writeSparseSafetensors(path.join(dir, 'big.safetensors'), [{ name, shape: [R, C] }]);
  const rows = Array.from({ length: R }, (_, r) => r);
  big.poke(name, rows.map((r) => r * C + col), rows.map((r) => r - 4000.5));
  expect(fs.statSync(big.path).size).toBe(big.headerBytes + R * C * 4);

  const rss0 = process.memoryUsage().rss;
  const { result, bytes, calls } = countReadBytes(() => {
    const f = SafetensorsFile.open(big.path);
    try {
      return [f.readColumn(name, col), f.readColumn(name, col + 1)];
    } finally {
      f.close();
    }
  });
  const growth = process.memoryUsage().rss - rss0;
  expect(calls).toBeGreaterThan(0); // the counter sees the library's reads
  expect(bytes).toBeLessThanOrEqual(big.headerBytes + 2 * R * 4);
  expect(growth).toBeLessThan(64 << 20);
  expect(Array.from(result[0])).toEqual(rows.map((r) => r - 4000.5));
  expect(result[1].every((x) => x === 0)).toBe(true);
  fs.rmSync(big.path);
});
