/**
 * runGemm (backend/gemm/pool.ts): tiles over worker threads + the caller must give exactly the bits
 * of one single-threaded kernel call, for decode (M = 1) and prefill-sized (tiled) calls, with
 * SP_THREADS = 1, 2 and more threads than workers.
 */
import { Arena } from '../../src/backend/gemm/arena.js';
import { gemmThreads, runGemm } from '../../src/backend/gemm/pool.js';
import { firstBad, firstBitDiff, layout, randArray, readY, refGemm, type Layout } from './reference.js';

const saved = process.env.SP_THREADS;
afterAll(() => {
  if (saved === undefined) delete process.env.SP_THREADS;
  else process.env.SP_THREADS = saved;
});

interface Case {
  arena: Arena;
  l: Layout;
  single: Float32Array; // one Arena.gemm call over everything
}

function makeCase(M: number, N: number, K: number, seed: number, withBias = true): Case & { x: Float32Array; W: Float32Array; bias?: Float32Array } {
  const arena = new Arena(4 * (N + M) * (K + 16) + (1 << 16));
  const x = randArray(M * K, seed, 2);
  const W = randArray(N * K, seed + 1, 0.2);
  const bias = withBias ? randArray(N, seed + 2, 1) : undefined;
  const l = layout(arena, x, W, bias, M, N, K);
  arena.gemm(l.W, l.x, l.y, l.bias, l.Kp, l.N, 0, N, 0, M);
  const single = readY(arena, l);
  return { arena, l, single, x, W, bias };
}

function threaded(c: Case): Float32Array {
  const { arena, l } = c;
  arena.f32().fill(NaN, l.y / 4, l.y / 4 + l.M * l.N); // every output must be written again
  runGemm(arena, { W: l.W, x: l.x, y: l.y, bias: l.bias, Kp: l.Kp, N: l.N, M: l.M });
  return readY(arena, l);
}

const poolOf = () => (globalThis as Record<symbol, { size: number } | undefined>)[Symbol.for('sp.gemm.pool')];

test('gemmThreads reads SP_THREADS at each call', () => {
  process.env.SP_THREADS = '1';
  expect(gemmThreads()).toBe(1);
  process.env.SP_THREADS = '2';
  expect(gemmThreads()).toBe(2);
  process.env.SP_THREADS = '3';
  expect(gemmThreads()).toBe(3);
});

const shapes: [string, number, number, number][] = [
  // [name, M, N, K]; work = M·N·Kp
  ['decode M=1 N=1024 K=512', 1, 1024, 512],
  ['decode M=1 N=333 K=200 (N not a multiple of the tile)', 1, 333, 200],
  ['M=8 N=100 K=100 (just over the threading threshold)', 8, 100, 100],
  ['M=5 N=64 K=200', 5, 64, 200],
  ['prefill M=70 N=300 K=200 (3 row tiles, last partial)', 70, 300, 200],
  ['M=33 N=50 K=768', 33, 50, 768],
  ['small work M=2 N=10 K=30 (single-threaded path)', 2, 10, 30],
];

describe.each(shapes)('%s', (_name, M, N, K) => {
  let c: ReturnType<typeof makeCase>;
  beforeAll(() => {
    c = makeCase(M, N, K, M * 1000 + N);
  });

  test('single-threaded kernel matches the float64 reference', () => {
    const { y, mag } = refGemm(c.x, c.W, c.bias, M, N, K);
    const bad = firstBad(c.single, y, mag);
    expect(bad === -1 ? 'ok' : `y[${bad}] = ${c.single[bad]}, want ${y[bad]}`).toBe('ok');
  });

  test.each(['1', '2', '3', '8'])('SP_THREADS=%s: bitwise identical to one kernel call (5 repeats)', (threads) => {
    process.env.SP_THREADS = threads;
    for (let r = 0; r < 5; r++) {
      const got = threaded(c);
      const d = firstBitDiff(got, c.single);
      if (d !== -1) throw new Error(`repeat ${r}: y[${d}] = ${got[d]}, single-threaded ${c.single[d]}`);
    }
  });
});

test('the worker pool grows to the largest SP_THREADS asked for (8 → 7 workers + the caller)', () => {
  // The describe blocks above ran SP_THREADS=2, 3 and 8 on work over the threshold.
  expect(poolOf()?.size).toBe(7);
});

test('without bias (bias address 0), threaded', () => {
  process.env.SP_THREADS = '2';
  const c = makeCase(70, 300, 200, 77, false);
  expect(c.l.bias).toBe(0);
  const { y, mag } = refGemm(c.x, c.W, undefined, 70, 300, 200);
  expect(firstBad(c.single, y, mag)).toBe(-1);
  expect(firstBitDiff(threaded(c), c.single)).toBe(-1);
});

test('back-to-back threaded calls alternating between arenas of different sizes stay exact', () => {
  // Decode-like small jobs in quick succession, where a worker still finishing (or just waking for)
  // one job overlaps the next. Arenas of different sizes, so a tile computed with another arena's
  // kernel instance shows up (unwritten NaN outputs, or a trap). An earlier pool.ts failed this
  // under load (NaN left in the output; once a hang).
  process.env.SP_THREADS = '2';
  const cases = [makeCase(1, 256, 256, 501), makeCase(8, 96, 96, 502), makeCase(1, 512, 128, 503), makeCase(40, 64, 64, 504)];
  const t0 = Date.now();
  let calls = 0;
  while (Date.now() - t0 < 700) {
    for (const k of cases) {
      const got = threaded(k);
      calls++;
      const d = firstBitDiff(got, k.single);
      if (d !== -1) throw new Error(`call ${calls} (arena ${k.arena.id}, M=${k.l.M} N=${k.l.N}): y[${d}] = ${got[d]}, single-threaded ${k.single[d]}`);
    }
  }
  // Inputs and weights of every arena untouched: the results still match the reference.
  for (const k of cases) {
    const { y, mag } = refGemm(k.x, k.W, k.bias, k.l.M, k.l.N, k.l.K);
    expect(firstBad(threaded(k), y, mag)).toBe(-1);
  }
  expect(calls).toBeGreaterThan(100);
});

test('a trapping call (output out of bounds) throws instead of hanging, and the pool still works after', () => {
  process.env.SP_THREADS = '2';
  const c = makeCase(8, 128, 128, 601); // 131072 multiply-adds: threaded
  const { arena, l } = c;
  const end = arena.memory.buffer.byteLength;
  expect(() => runGemm(arena, { W: l.W, x: l.x, y: end, bias: l.bias, Kp: l.Kp, N: l.N, M: l.M })).toThrow(/trapped|out of bounds/);
  expect(firstBitDiff(threaded(c), c.single)).toBe(-1);
  // The single-threaded path traps too (a RuntimeError from wasm).
  process.env.SP_THREADS = '1';
  expect(() => runGemm(arena, { W: l.W, x: l.x, y: end, bias: l.bias, Kp: l.Kp, N: l.N, M: l.M })).toThrow(/out of bounds/);
  expect(firstBitDiff(threaded(c), c.single)).toBe(-1);
});
