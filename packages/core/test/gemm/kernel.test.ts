/**
 * sp's wasm SIMD gemm kernel (backend/gemm) against a float64 reference written with plain loops:
 * the committed binary matches its generator, values for awkward shapes and partial ranges, and
 * batch invariance (a row's result does not depend on the rows computed with it).
 */
import { Arena, gemmKernelKind, gemmSupported, padK } from '../../src/backend/gemm/arena.js';
import { GEMM_RELAXED_WASM_BASE64, GEMM_WASM_BASE64 } from '../../src/backend/gemm/wasm-binary.js';
import { firstBad, firstBitDiff, layout, randArray, readY, refGemm, type Layout } from './reference.js';

// A variable specifier: the .mjs scripts have no type declarations.
const ASSEMBLE = '../../scripts/gemm-assemble.mjs';

function run(arena: Arena, l: Layout, n0 = 0, n1 = l.N, m0 = 0, m1 = l.M): void {
  arena.gemm(l.W, l.x, l.y, l.bias, l.Kp, l.N, n0, n1, m0, m1);
}

/** Pre-fills y with a value the kernel would never produce, so every output must be written. */
function poisonY(arena: Arena, l: Layout, v = 1234.5): void {
  arena.f32().fill(v, l.y / 4, l.y / 4 + l.M * l.N);
}

test('the engine supports the kernel (wasm SIMD + shared memory)', () => {
  expect(gemmSupported()).toBe(true);
});

test('committed GEMM_WASM_BASE64 equals the assembled scripts/gemm-wat.mjs (else run `pnpm --filter @sp/core run gen:wasm`)', async () => {
  const { assembleGemm, wasmBinaryIsCurrent } = (await import(ASSEMBLE)) as { assembleGemm: () => Promise<Uint8Array>; wasmBinaryIsCurrent: () => Promise<boolean> };
  const fresh = Buffer.from(await assembleGemm()).toString('base64');
  // Not toBe: a failure would print two multi-kilobyte strings.
  const same = fresh === GEMM_WASM_BASE64;
  if (!same) throw new Error('src/backend/gemm/wasm-binary.ts is stale: run `pnpm --filter @sp/core run gen:wasm`');
  expect(same).toBe(true);
  // The whole file as the generator writes it: what `build-gemm-wasm.mjs --check` checks.
  expect(await wasmBinaryIsCurrent()).toBe(true);
});

test('padK rounds up to multiples of 16', () => {
  expect([1, 15, 16, 17, 32, 37, 768].map(padK)).toEqual([16, 16, 16, 32, 32, 48, 768]);
});

test('reference and kernel on a hand-computed 2×2 case', () => {
  // x = [[1, 2], [3, 4]], W rows (one per output) = [[5, 6], [7, 8]], bias = [0.5, -1]
  const x = Float32Array.from([1, 2, 3, 4]);
  const W = Float32Array.from([5, 6, 7, 8]);
  const bias = Float32Array.from([0.5, -1]);
  const want = [17.5, 22, 39.5, 52];
  expect(Array.from(refGemm(x, W, bias, 2, 2, 2).y)).toEqual(want);
  expect(Array.from(refGemm(x, W, undefined, 2, 2, 2).y)).toEqual([17, 23, 39, 53]);
  const arena = new Arena(1 << 16);
  const l = layout(arena, x, W, bias, 2, 2, 2);
  poisonY(arena, l);
  run(arena, l);
  expect(Array.from(readY(arena, l))).toEqual(want);
  const l0 = layout(arena, x, W, undefined, 2, 2, 2);
  expect(l0.bias).toBe(0);
  poisonY(arena, l0);
  run(arena, l0);
  expect(Array.from(readY(arena, l0))).toEqual([17, 23, 39, 53]);
});

describe('kernel vs float64 reference', () => {
  const Ks = [1, 3, 15, 16, 17, 37, 64, 100];
  const Ns = [1, 2, 5, 33];
  const Ms = [1, 2, 3, 4, 5, 6, 7, 8, 9];

  test.each([true, false])('all shapes K ∈ {1..100}, N ∈ {1..33}, M ∈ 1..9, bias %s (error ≤ 1e-6 · Σ|x·w|)', (withBias) => {
    const arena = new Arena(1 << 20);
    let cases = 0;
    let seed = withBias ? 1000 : 2000;
    for (const K of Ks) {
      for (const N of Ns) {
        for (const M of Ms) {
          const x = randArray(M * K, seed++, 2);
          const W = randArray(N * K, seed++, 0.5);
          const bias = withBias ? randArray(N, seed++, 1) : undefined;
          const l = layout(arena, x, W, bias, M, N, K);
          poisonY(arena, l);
          run(arena, l);
          const { y, mag } = refGemm(x, W, bias, M, N, K);
          const got = readY(arena, l);
          const bad = firstBad(got, y, mag);
          if (bad !== -1) throw new Error(`K=${K} N=${N} M=${M} bias=${withBias}: y[${bad}] = ${got[bad]}, want ${y[bad]}`);
          cases++;
        }
      }
    }
    expect(cases).toBe(Ks.length * Ns.length * Ms.length);
  });

  test('a wrong answer is caught (the tolerance is tight enough to fail)', () => {
    const K = 37, N = 5, M = 3;
    const x = randArray(M * K, 1, 2);
    const W = randArray(N * K, 2, 0.5);
    const { y, mag } = refGemm(x, W, undefined, M, N, K);
    const off = Float32Array.from(y);
    expect(firstBad(off, y, mag)).toBe(-1);
    off[7] += 1e-4 * mag[7];
    expect(firstBad(off, y, mag)).toBe(7);
    // Dropping one term (e.g. the last k, as a kernel that ignored the tail would) is caught.
    const { y: short } = refGemm(x.filter((_, i) => i % K !== K - 1), W.filter((_, i) => i % K !== K - 1), undefined, M, N, K - 1);
    expect(firstBad(Float32Array.from(short), y, mag)).not.toBe(-1);
  });

  test('exact results where float32 is exact (small integers), long K', () => {
    const K = 300, N = 7, M = 6;
    const x = new Float32Array(M * K).map((_, i) => ((i * 7) % 11) - 5);
    const W = new Float32Array(N * K).map((_, i) => ((i * 5) % 9) - 4);
    const bias = Float32Array.from({ length: N }, (_, n) => n - 3);
    const arena = new Arena(1 << 20);
    const l = layout(arena, x, W, bias, M, N, K);
    poisonY(arena, l);
    run(arena, l);
    expect(Array.from(readY(arena, l))).toEqual(Array.from(refGemm(x, W, bias, M, N, K).y));
  });

  test.each([
    // [K, N, M, n0, n1, m0, m1]
    [37, 11, 9, 2, 9, 1, 8],
    [37, 11, 9, 0, 11, 3, 4],
    [16, 5, 8, 4, 5, 0, 8],
    [1, 6, 7, 1, 3, 2, 7],
    [100, 9, 9, 3, 3, 0, 9], // empty n range: nothing written
    [100, 9, 9, 0, 9, 5, 5], // empty m range
    [64, 4, 9, 0, 4, 5, 9], // a 4-row block starting at row 5
  ])('partial range K=%i N=%i M=%i n∈[%i,%i) m∈[%i,%i): in-range outputs match, every other byte of the arena unchanged', (K, N, M, n0, n1, m0, m1) => {
    for (const withBias of [true, false]) {
      const arena = new Arena(1 << 20);
      const x = randArray(M * K, 11 + K, 2);
      const W = randArray(N * K, 12 + N, 0.5);
      const bias = withBias ? randArray(N, 13, 1) : undefined;
      const l = layout(arena, x, W, bias, M, N, K);
      const f = arena.f32();
      // Distinct sentinel per output.
      for (let i = 0; i < M * N; i++) f[l.y / 4 + i] = 1000 + i;
      // Rows of x and W outside the ranges are never read: NaN there must not reach the outputs.
      for (let m = 0; m < M; m++) if (m < m0 || m >= m1) f.fill(NaN, l.x / 4 + m * l.Kp, l.x / 4 + m * l.Kp + K);
      for (let n = 0; n < N; n++) if (n < n0 || n >= n1) f.fill(NaN, l.W / 4 + n * l.Kp, l.W / 4 + n * l.Kp + K);
      const before = new Uint32Array(f.buffer.slice(0, l.y + M * N * 4 + 4096));
      run(arena, l, n0, n1, m0, m1);
      const after = new Uint32Array(arena.f32().buffer.slice(0, before.byteLength));
      const { y, mag } = refGemm(x, W, bias, M, N, K);
      const got = readY(arena, l);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          const i = m * N + n;
          if (n >= n0 && n < n1 && m >= m0 && m < m1) {
            if (!(Math.abs(got[i] - y[i]) <= 1e-6 * mag[i])) throw new Error(`bias=${withBias} y[${m},${n}] = ${got[i]}, want ${y[i]}`);
          } else if (got[i] !== 1000 + i) {
            throw new Error(`bias=${withBias} y[${m},${n}] outside the range was overwritten: ${got[i]}`);
          }
        }
      }
      // No byte outside the in-range outputs changed (no stray writes past y, into guards, W, x, bias).
      const yLo = l.y / 4, yHi = l.y / 4 + M * N;
      for (let i = 0; i < before.length; i++) {
        if (i >= yLo && i < yHi) continue;
        if (before[i] !== after[i]) throw new Error(`bias=${withBias}: float ${i} of the arena changed (y is [${yLo}, ${yHi}))`);
      }
    }
  });

  test('the padding of K is read: non-zero padding in x and W changes results (the kernel does read Kp)', () => {
    // Documents the contract: the padding must be 0 (PackedLinear zero-fills it). If this ever
    // stops failing, the kernel no longer reads the padded tail and the contract can be relaxed.
    const K = 17, N = 3, M = 2;
    const arena = new Arena(1 << 16);
    const x = randArray(M * K, 5, 1);
    const W = randArray(N * K, 6, 1);
    const l = layout(arena, x, W, undefined, M, N, K);
    const f = arena.f32();
    for (let m = 0; m < M; m++) f.fill(1, l.x / 4 + m * l.Kp + K, l.x / 4 + (m + 1) * l.Kp);
    for (let n = 0; n < N; n++) f.fill(1, l.W / 4 + n * l.Kp + K, l.W / 4 + (n + 1) * l.Kp);
    run(arena, l);
    const got = readY(arena, l);
    const { y } = refGemm(x, W, undefined, M, N, K);
    // Each output gains Kp - K = 15 (1·1 per padded lane).
    for (let i = 0; i < M * N; i++) expect(got[i]).toBeCloseTo(y[i] + (l.Kp - K), 4);
  });
});

describe('batch invariance (bit for bit)', () => {
  test.each([
    [5, 37, 29],
    [8, 37, 29],
    [8, 200, 13],
    [9, 768, 4],
    [12, 1, 3],
  ])('M=%i K=%i N=%i: each row alone (M=1) equals the same row inside the batch, at every position and block offset', (M, K, N) => {
    for (const withBias of [false, true]) {
      const arena = new Arena(1 << 22);
      const x = randArray(M * K, 31 + M, 3);
      const W = randArray(N * K, 32 + K, 0.3);
      const bias = withBias ? randArray(N, 33, 1) : undefined;
      const l = layout(arena, x, W, bias, M, N, K);
      run(arena, l);
      const batch = readY(arena, l);
      // The same rows with the 4-row blocks starting elsewhere: rows [s, M).
      for (const s of [1, 2, 3]) {
        if (s >= M) continue;
        arena.f32().fill(0, l.y / 4, l.y / 4 + M * N);
        run(arena, l, 0, N, s, M);
        const shifted = readY(arena, l).subarray(s * N);
        const d = firstBitDiff(shifted, batch.subarray(s * N));
        if (d !== -1) throw new Error(`rows [${s}, ${M}) differ from the full batch at ${d}: ${shifted[d]} vs ${batch[s * N + d]}`);
      }
      for (let p = 0; p < M; p++) {
        const row = x.slice(p * K, (p + 1) * K);
        const one = layout(arena, row, W, bias, 1, N, K);
        run(arena, one);
        const alone = readY(arena, one);
        const d = firstBitDiff(alone, batch.subarray(p * N, (p + 1) * N));
        if (d !== -1) throw new Error(`bias=${withBias} row ${p}: alone y[${d}] = ${alone[d]}, in batch ${batch[p * N + d]}`);
      }
      // And the values are right.
      const { y, mag } = refGemm(x, W, bias, M, N, K);
      expect(firstBad(batch, y, mag)).toBe(-1);
    }
  });

  test('the bitwise comparison can fail: a 1-ulp change is detected', () => {
    const a = Float32Array.from([1, 2, 3]);
    const b = Float32Array.from(a);
    new Uint32Array(b.buffer)[1] += 1;
    expect(firstBitDiff(a, b)).toBe(1);
    expect(firstBitDiff(a, Float32Array.from(a))).toBe(-1);
  });
});

describe('transpose (the loader turns Conv1D [in, out] into [out, in] rows with it)', () => {
  test.each([
    [1, 1, 16],
    [3, 5, 16],
    [16, 16, 16],
    [17, 33, 32],
    [37, 53, 48],
    [40, 7, 48],
  ])('rows=%i cols=%i stride=%i: dst[c·stride + r] = src[r·cols + c], nothing else written', (rows, cols, stride) => {
    const arena = new Arena(1 << 16);
    const src = randArray(rows * cols, rows * 100 + cols, 1);
    const s = arena.alloc(rows * cols * 4);
    const d = arena.alloc(cols * stride * 4 + 256);
    const f = arena.f32();
    f.set(src, s / 4);
    f.fill(-7, d / 4, d / 4 + cols * stride + 64); // sentinel in the padding and past the end
    arena.transpose(s, d, rows, cols, stride);
    const got = arena.f32();
    for (let c = 0; c < cols; c++) {
      for (let r = 0; r < stride; r++) {
        const v = got[d / 4 + c * stride + r];
        const want = r < rows ? src[r * cols + c] : -7;
        if (!Object.is(v, want)) throw new Error(`dst[${c}·${stride} + ${r}] = ${v}, want ${want}`);
      }
    }
    for (let i = cols * stride; i < cols * stride + 64; i++) expect(got[d / 4 + i]).toBe(-7);
    expect(Array.from(got.subarray(s / 4, s / 4 + rows * cols))).toEqual(Array.from(src)); // source intact
  });
});

// Both binaries, each instantiated on an arena's memory: the plain SIMD kernel (every runtime) and the
// relaxed-SIMD FMA one where the runtime validates it (Node ≥ 22; on Node 20 that case is skipped).
const plainBytes = Buffer.from(GEMM_WASM_BASE64, 'base64');
const fmaBytes = Buffer.from(GEMM_RELAXED_WASM_BASE64, 'base64');
const hasRelaxed = WebAssembly.validate(fmaBytes);

test(`gemmModule runs the FMA kernel exactly where the runtime validates it (here: ${hasRelaxed ? 'yes' : 'no'})`, () => {
  expect(WebAssembly.validate(plainBytes)).toBe(true);
  expect(gemmKernelKind()).toBe(hasRelaxed && process.env.SP_RELAXED_SIMD !== '0' ? 'fma' : 'simd');
});

describe.each([['plain SIMD', plainBytes, true], ['relaxed-SIMD FMA', fmaBytes, hasRelaxed]] as const)('%s binary, instantiated directly', (_name, bytes, available) => {
  const maybe = available ? test : test.skip;
  const kernelOn = (arena: Arena) => {
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: arena.memory } });
    return inst.exports.gemm as (W: number, x: number, y: number, bias: number, Kp: number, N: number, n0: number, n1: number, m0: number, m1: number) => void;
  };

  maybe('shapes K ∈ {1..100}, N ∈ {1..33}, M ∈ 1..9: error ≤ 1e-6 · Σ|x·w|', () => {
    const arena = new Arena(1 << 20);
    const gemm = kernelOn(arena);
    let seed = 5000;
    for (const K of [1, 15, 16, 17, 37, 100]) {
      for (const N of [1, 5, 33]) {
        for (const M of [1, 4, 5, 9]) {
          const x = randArray(M * K, seed++, 2), W = randArray(N * K, seed++, 0.5), bias = randArray(N, seed++, 1);
          const l = layout(arena, x, W, bias, M, N, K);
          poisonY(arena, l);
          gemm(l.W, l.x, l.y, l.bias, l.Kp, l.N, 0, l.N, 0, l.M);
          const { y, mag } = refGemm(x, W, bias, M, N, K);
          const got = readY(arena, l);
          const bad = firstBad(got, y, mag);
          if (bad !== -1) throw new Error(`K=${K} N=${N} M=${M}: y[${bad}] = ${got[bad]}, want ${y[bad]}`);
        }
      }
    }
  });

  maybe('batch invariance: each of 9 rows computed alone equals the 9-row call, bit for bit', () => {
    const arena = new Arena(1 << 20);
    const gemm = kernelOn(arena);
    const K = 100, N = 17, M = 9;
    const l = layout(arena, randArray(M * K, 77, 2), randArray(N * K, 78, 0.5), randArray(N, 79, 1), M, N, K);
    gemm(l.W, l.x, l.y, l.bias, l.Kp, l.N, 0, l.N, 0, l.M);
    const all = Float32Array.from(readY(arena, l));
    poisonY(arena, l);
    for (let m = 0; m < M; m++) gemm(l.W, l.x, l.y, l.bias, l.Kp, l.N, 0, l.N, m, m + 1);
    expect(firstBitDiff(readY(arena, l), all)).toBe(-1);
  });
});
