/**
 * PackedLinear.apply splits calls whose inputs + outputs exceed the arena's scratch budget into
 * chunks of floor(SCRATCH_BYTES / ((Kp + N)·4)) rows. The real budget is 256 MiB; here the arena
 * module is mocked with a budget of 3 rows (plus change) and runGemm is wrapped to record each
 * call, so the split runs on a tiny layer. The result must equal, bit for bit, one kernel call
 * over all rows (the kernel is batch invariant) and match the float64 reference.
 */
import { firstBad, firstBitDiff, randArray, refGemm } from './reference.js';

// ESM mocking: jest's object comes from import.meta (no @jest/globals in this workspace), and
// @types/jest lacks the ESM call, so its signature (from @jest/environment) is declared here.
type MockModule = <T = unknown>(moduleName: string, moduleFactory: () => T | Promise<T>, options?: { virtual?: boolean }) => typeof jest;
const { jest: j } = import.meta as unknown as { jest: typeof jest & { unstable_mockModule: MockModule } };

const K = 37, N = 53, Kp = 48; // padK(37)
const ROWS = 3;
const SCRATCH = ROWS * (Kp + N) * 4 + 100; // floor(SCRATCH / ((Kp + N)·4)) = 3

const ARENA = '../../src/backend/gemm/arena.js';
const POOL = '../../src/backend/gemm/pool.js';
const calls: number[] = [];

type ArenaModule = typeof import('../../src/backend/gemm/arena.js');
type PoolModule = typeof import('../../src/backend/gemm/pool.js');
type LinearModule = typeof import('../../src/backend/gemm/packed-linear.js');
type BackendModule = typeof import('../../src/backend/index.js');

let arenaMod: ArenaModule;
let linear: LinearModule;
let backend: BackendModule;

beforeAll(async () => {
  const realArena = (await import(ARENA)) as ArenaModule;
  const realPool = (await import(POOL)) as PoolModule;
  j.unstable_mockModule(ARENA, () => ({ ...realArena, SCRATCH_BYTES: SCRATCH }));
  j.unstable_mockModule(POOL, () => ({
    ...realPool,
    runGemm: (arena: Parameters<PoolModule['runGemm']>[0], job: Parameters<PoolModule['runGemm']>[1]) => {
      calls.push(job.M);
      realPool.runGemm(arena, job);
    },
  }));
  arenaMod = realArena;
  linear = (await import('../../src/backend/gemm/packed-linear.js')) as LinearModule;
  backend = (await import('../../src/backend/index.js')) as BackendModule;
  await backend.initBackend();
});

test.each([
  [10, [3, 3, 3, 1]],
  [3, [3]],
  [1, [1]],
  [7, [3, 3, 1]],
])('M=%i rows go through runGemm as %j and give exactly one full kernel call', (M, chunks) => {
  const { Arena } = arenaMod;
  const { tf } = backend;
  const W = randArray(N * K, 21, 0.5); // [out, in] rows here
  const bias = randArray(N, 22, 1);
  const arena = new Arena(N * Kp * 4 + N * 4 + (1 << 16));
  const w = arena.alloc(N * Kp * 4);
  const b = arena.alloc(N * 4);
  const f = arena.f32();
  for (let n = 0; n < N; n++) f.set(W.subarray(n * K, (n + 1) * K), w / 4 + n * Kp);
  f.set(bias, b / 4);
  const layer = new linear.PackedLinear(arena, w, b, K, N);

  const xs = randArray(M * K, 23 + M, 2);
  calls.length = 0;
  const x = tf.tensor2d(xs, [M, K]);
  const y = layer.apply(x);
  expect(calls).toEqual(chunks);
  expect(y.shape).toEqual([M, N]);
  const got = y.dataSync() as Float32Array;

  // One kernel call over all M rows (no split), straight on the arena.
  const xa = arena.alloc(M * Kp * 4);
  const ya = arena.alloc(M * N * 4);
  const g = arena.f32();
  for (let m = 0; m < M; m++) g.set(xs.subarray(m * K, (m + 1) * K), xa / 4 + m * Kp);
  arena.gemm(w, xa, ya, b, Kp, N, 0, N, 0, M);
  const whole = arena.f32().slice(ya / 4, ya / 4 + M * N);
  expect(firstBitDiff(got, whole)).toBe(-1);

  const { y: want, mag } = refGemm(xs, W, bias, M, N, K);
  expect(firstBad(got, want, mag)).toBe(-1);
  tf.dispose([x, y]);
});
