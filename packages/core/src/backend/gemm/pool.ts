/**
 * Runs one gemm over worker threads plus the calling thread.
 *
 * The output is cut into tiles (rows of W × rows of x); every thread, the caller included, claims
 * tiles from a shared counter until none are left. Nobody waits for a thread that was not
 * scheduled: on a busy machine the caller simply does more of the tiles itself (XNNPACK's pool, by
 * contrast, hands each thread a fixed share and waits for all of them at every op).
 *
 * A claim is one atomic add on a 64-bit word holding (job number, tile count, next tile), so a
 * worker that wakes up late can never take a tile of one job with the tile count of another: the
 * value it gets back says which job the tile belongs to, and that job cannot finish (nor its
 * parameters change) until the tile is done.
 */
import os from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { threadsFromEnv } from '../env.js';
import { gemmModule, type Arena, type GemmFn } from './arena.js';

// Control block: one SharedArrayBuffer seen as BigInt64Array (word 0) and Int32Array (from index 2).
const CLAIM = 0; //   BigInt64 word: job (bits 40+) | tiles (bits 20..39) | next tile (bits 0..19)
const GEN = 2; //     Int32: job counter; idle workers sleep on it
const DONE = 3; //    tiles finished in the current job
const HELPERS = 4; // workers taking part in the current job (those with index < HELPERS)
const FAILED = 5; //  set when a kernel call trapped
const ARGS = 6; //    6..16: arena id, W, x, y, bias, Kp, N, M, tileM, tileN, tilesN
const MSGS = 17; //   17 + i: messages posted to worker i so far (arena attach)
const MAX_WORKERS = 63;
const MAX_TILES = (1 << 20) - 1024; // the 20-bit counter also absorbs one overshoot claim per thread

export interface GemmJob {
  W: number; x: number; y: number; bias: number;
  Kp: number; N: number; M: number;
}

/**
 * The worker's whole program, started with eval (so it works from the TypeScript sources under jest
 * as well as from dist/). It must not refer to anything outside its own body but runTiles: the
 * control-block indices above are repeated as literals.
 */
function workerMain(): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { workerData, receiveMessageOnPort } = require('node:worker_threads');
  const { module, sab, port, index } = workerData as { module: WebAssembly.Module; sab: SharedArrayBuffer; port: MessagePort; index: number };
  const ctrl = new Int32Array(sab);
  const claims = new BigInt64Array(sab, 0, 1);
  const kernels = new Map<number, GemmFn>();
  let seen = 0;
  const kernel = (arena: number): GemmFn | undefined => {
    if (Atomics.load(ctrl, 17 + index) !== seen) {
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        const msg = m.message as { attach: number; memory: WebAssembly.Memory };
        seen++;
        kernels.set(msg.attach, new WebAssembly.Instance(module, { env: { mem: msg.memory } }).exports.gemm as GemmFn);
      }
    }
    return kernels.get(arena);
  };
  let gen = 0;
  for (;;) {
    // Sleep until the next job. No spinning: on a 2-core machine (often two hyperthreads of one
    // core) a spinning worker slowed the caller's own work more than the faster wake-up gained
    // (measured: decode 28-32 tok/s without spinning vs 22-28 with 0.2-1 ms of spin; 20-22 vs
    // 12-13 with another process busy).
    while (Atomics.load(ctrl, 2) === gen) Atomics.wait(ctrl, 2, gen);
    gen = Atomics.load(ctrl, 2);
    if (index >= Atomics.load(ctrl, 4)) continue; // fewer threads asked for than the pool has: sit this one out
    runTiles(ctrl, claims, kernel);
  }
}

/**
 * Claims and computes tiles until the current job has none left: the loop of every thread, the
 * caller's included (workers get its source prepended to theirs, so it too must not refer to
 * anything outside its own body).
 */
function runTiles(ctrl: Int32Array, claims: BigInt64Array, kernelOf: (arena: number) => GemmFn | undefined): void {
  for (;;) {
    const c = Atomics.add(claims, 0, 1n);
    const t = Number(c & 0xfffffn), tiles = Number((c >> 20n) & 0xfffffn);
    if (t >= tiles) return;
    // Tile t of the job whose parameters are in the block now (it cannot end before this tile).
    const [arena, W, x, y, bias, Kp, N, M, tileM, tileN, tilesN] = ctrl.slice(6, 17);
    const m0 = Math.floor(t / tilesN) * tileM, n0 = (t % tilesN) * tileN;
    try {
      kernelOf(arena)!(W, x, y, bias, Kp, N, n0, Math.min(N, n0 + tileN), m0, Math.min(M, m0 + tileM));
    } catch {
      // A trap (or an arena a worker does not know): the caller reports it once every tile is
      // accounted for, so nobody waits forever and no thread still writes after it throws.
      Atomics.store(ctrl, 5, 1);
    }
    if (Atomics.add(ctrl, 3, 1) + 1 === tiles) Atomics.notify(ctrl, 3);
  }
}

/**
 * Threads used for the kernel, the caller included: $SP_THREADS (read at every call; 1..64, anything
 * else is an SpError), else one per core (at most 8). Tiles are claimed dynamically, so extra threads cost little on a busy machine.
 */
let cores: number | undefined;
export function gemmThreads(): number {
  const env = threadsFromEnv('SP_THREADS'); // 1..MAX_THREADS (= MAX_WORKERS + 1), else an SpError
  if (env !== undefined) return env;
  cores ??= os.cpus().length || 1; // os.cpus() reads /proc: too slow to call per matmul
  return Math.max(1, Math.min(8, cores));
}

class Pool {
  private readonly sab = new SharedArrayBuffer((MSGS + MAX_WORKERS) * 4);
  private readonly ctrl = new Int32Array(this.sab);
  private readonly claims = new BigInt64Array(this.sab, 0, 1);
  private job = 0;
  private readonly ports: MessagePort[] = [];
  private readonly workers: Worker[] = [];
  /** Arenas the workers know, by id: memories held weakly, so a new worker can be told of them. */
  private readonly attached = new Map<number, WeakRef<WebAssembly.Memory>>();
  // An arena dropped without disposeWeights: its memory is still referenced by the workers.
  private readonly registry = new FinalizationRegistry<number>((id) => releaseArenaId(id));

  /** At least `n` workers (unreferenced, they do not keep a process alive; close() stops them). */
  grow(n: number): void {
    for (let i = this.ports.length; i < Math.min(n, MAX_WORKERS); i++) {
      const { port1, port2 } = new MessageChannel();
      const w = new Worker(`${runTiles.toString()}\n(${workerMain.toString()})()`, {
        eval: true,
        workerData: { module: gemmModule(), sab: this.sab, port: port2, index: i },
        transferList: [port2],
      });
      w.unref();
      port1.unref();
      this.ports.push(port1);
      this.workers.push(w);
      for (const [id, mem] of this.attached) {
        const memory = mem.deref();
        if (memory) this.post(i, { attach: id, memory });
      }
    }
  }

  get size(): number {
    return this.ports.length;
  }

  private post(worker: number, msg: object): void {
    this.ports[worker].postMessage(msg);
    Atomics.add(this.ctrl, MSGS + worker, 1);
  }

  private attach(arena: Arena): void {
    if (this.attached.has(arena.id)) return;
    this.attached.set(arena.id, new WeakRef(arena.memory));
    for (let i = 0; i < this.ports.length; i++) this.post(i, { attach: arena.id, memory: arena.memory });
    this.registry.register(arena, arena.id);
  }

  /** Whether the workers hold (or have been sent) arena `id`'s memory. */
  knows(id: number): boolean {
    return this.attached.has(id);
  }

  /**
   * Stops every worker. A worker told to drop an instance would keep the memory until its own
   * isolate collects garbage, and an idle worker never does (measured: every load/dispose cycle kept
   * the whole arena); a stopped worker's isolate is torn down with all it references. The caller
   * must not use this pool again: its workers sleep on this control block, which nobody wakes.
   */
  close(): void {
    for (const w of this.workers) void w.terminate();
    for (const p of this.ports) p.close();
    this.workers.length = this.ports.length = 0;
    this.attached.clear();
  }

  run(arena: Arena, j: GemmJob, tileM: number, tileN: number, helpers: number): void {
    this.attach(arena);
    const c = this.ctrl;
    const tilesN = Math.ceil(j.N / tileN);
    const tiles = Math.ceil(j.M / tileM) * tilesN;
    if (tiles > MAX_TILES) throw new RangeError(`gemm: ${tiles} tiles, more than ${MAX_TILES}`);
    c.set([arena.id, j.W, j.x, j.y, j.bias, j.Kp, j.N, j.M, tileM, tileN, tilesN], ARGS);
    Atomics.store(c, DONE, 0);
    Atomics.store(c, HELPERS, helpers);
    this.job = (this.job + 1) % 2 ** 23;
    Atomics.store(this.claims, CLAIM, (BigInt(this.job) << 40n) | (BigInt(tiles) << 20n)); // publishes the job
    Atomics.add(c, GEN, 1);
    Atomics.notify(c, GEN);
    runTiles(c, this.claims, () => arena.gemm);
    // Tiles another thread claimed and is still computing.
    let spins = 0;
    for (let d = Atomics.load(c, DONE); d < tiles; d = Atomics.load(c, DONE)) {
      if (++spins > 2000) Atomics.wait(c, DONE, d, 5);
    }
    if (Atomics.exchange(c, FAILED, 0)) throw new RangeError('gemm: the kernel trapped (memory access out of bounds)');
  }
}

// One pool per process, shared by every copy of this module (jest gives each test file its own).
const POOL = Symbol.for('sp.gemm.pool');
const g = globalThis as { [POOL]?: Pool };

function releaseArenaId(id: number): void {
  const pool = g[POOL];
  if (!pool?.knows(id)) return;
  // Nothing runs on the pool now (runGemm is synchronous), so it can go; the next gemm starts a
  // fresh one (~tens of ms), told only of the arenas still in use. A fresh control block means a
  // worker that is still shutting down can never take part in a new job.
  pool.close();
  g[POOL] = undefined;
}

/**
 * Arenas no longer used (disposeWeights): the workers let go of their memories, so each is freed
 * once the caller drops its own references too. A WebAssembly.Memory cannot be freed explicitly.
 */
export function releaseArenas(arenas: readonly Arena[]): void {
  for (const a of arenas) releaseArenaId(a.id);
}

/** y = x·Wᵀ + bias over all threads (see GemmJob). Synchronous. */
export function runGemm(arena: Arena, j: GemmJob): void {
  const threads = gemmThreads();
  if (threads === 1 || j.M * j.N * j.Kp < 1 << 16) {
    arena.gemm(j.W, j.x, j.y, j.bias, j.Kp, j.N, 0, j.N, 0, j.M);
    return;
  }
  // Tiles: a few per thread for one-row (decode) calls; for many rows, blocks whose weight rows
  // (~128 KB) and input rows stay in cache while they are reused.
  const [tileM, tileN] =
    j.M <= 8
      ? [j.M, Math.max(16, Math.ceil(j.N / (threads * 16)))] // small tiles: whoever is free takes the next
      : [32, Math.max(8, Math.floor(131072 / (j.Kp * 4)))];
  const pool = (g[POOL] ??= new Pool());
  if (pool.size < threads - 1) pool.grow(threads - 1);
  pool.run(arena, j, tileM, tileN, threads - 1);
}
