/**
 * The onnxruntime engine (wasm and cpu backends, when the optional `onnxruntime-node` is installed):
 * every Linear is ONNX sessions (onnx-graph.ts) whose MatMul/Gemm runs onnxruntime's MLAS kernels
 * (AVX2/AVX-512 FMA), W an initializer that onnxruntime prepacks once. Block layers are cut into
 * column slices, one per thread, each a one-thread session, the slices past the first on the
 * worker pool of ort-pool.ts; the unembedding is one session on onnxruntime's own threads.
 *
 * The forward pass is synchronous tfjs, so layers run through the binding's synchronous
 * `InferenceSession.run` (the public `session.run` wraps it in a promise). That is an internal API:
 * it is checked when the package is loaded, and a moved one is a one-line SpError, never a crash.
 * Measured here: ~7 µs per call beyond the product itself; x is read from and y written into the
 * tfjs wasm heap in place (pre-allocated outputs); a sliced layer copies x and the workers' part of
 * y through shared memory (rows · (in + out) floats).
 *
 * Memory: one copy of each W. Every W is an initializer: onnxruntime copies it when the session is
 * built and keeps only its packed copy. Block layers give W back on demand (`weight()`, norms,
 * gradients) by multiplying one-hot rows through the bias-free product, which reproduces W exactly.
 * The tied unembedding ('out-in') reads its rows, the token embeddings every forward pass gathers,
 * from the checkpoint file (open while the model lives; the FF keys and values are read from it
 * the same way): prepacked, its product is ~1.7× faster at 8 rows and the lens' 832 than fed at
 * each run, at the same memory.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { createRequire } from 'node:module';
import { SpError } from '../errors.js';
import { gemmThreads } from './gemm/pool.js';
import { appendFromQkv } from './copies.js';
import { heapTensor, readNow, wasmHeap } from './heap.js';
import { tf } from './index.js';
import { tfjsBatchMatMul, withInputGradient, type Linear } from './linear.js';
import { attentionGraph, B_FILE, batchMatMulGraph, linearGraph, unaryGraph, W_FILE } from './onnx-graph.js';
import { OrtPool, type LinearOutput } from './ort-pool.js';
import type { AttentionCore, Engine, EngineLinears, LinearSpec, Uploader } from './upload.js';

/**
 * onnxruntime-node is loaded with Node's own require, outside any module sandbox (jest's): its
 * binding makes output arrays in the main realm and onnxruntime-common's Tensor checks them with
 * `instanceof Float32Array`, which fails if the JS side was loaded in another realm.
 */
const nodeModule = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule?.('node:module') as typeof import('node:module') | undefined;
const require = (nodeModule?.createRequire ?? createRequire)(import.meta.url);

/** A tensor as the binding reads it (the fields of onnxruntime-common's Tensor it uses). */
interface OrtTensor {
  readonly type: 'float32' | 'int64';
  readonly dims: readonly number[];
  readonly data: Float32Array | BigInt64Array;
  readonly location: 'cpu';
}
type Feeds = Record<string, OrtTensor>;
/** onnxruntime-node's native session (dist/binding.d.ts, `Binding.InferenceSession`). */
interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(feeds: Feeds, fetches: Record<string, OrtTensor | null>, options: object): Feeds;
  dispose(): void;
}
interface Ort {
  readonly version: string;
  readonly Session: new () => NativeSession;
}

/** onnxruntime-node versions whose internal binding this file was written against. */
const SUPPORTED = /^1\.(2[0-9]|3[0-9])\./;

let loaded: Ort | Error | undefined;

/** onnxruntime-node, or why it cannot be used (not installed, no binary for this platform, moved API). */
function loadOrt(): Ort | Error {
  if (loaded) return loaded;
  try {
    const { version } = require('onnxruntime-node/package.json') as { version: string };
    if (!SUPPORTED.test(version)) throw new Error(`onnxruntime-node ${version} is not a supported version (1.20 to 1.39)`);
    const b = require('onnxruntime-node/dist/binding') as { binding?: { InferenceSession?: Ort['Session'] }; initOrt?: () => void };
    const Session = b.binding?.InferenceSession;
    const p = Session?.prototype as Partial<NativeSession> | undefined;
    if (typeof b.initOrt !== 'function' || typeof p?.loadModel !== 'function' || typeof p.run !== 'function' || typeof p.dispose !== 'function') {
      throw new Error(`onnxruntime-node ${version}: its native binding no longer has the synchronous InferenceSession API sp uses`);
    }
    b.initOrt();
    loaded = { version, Session: Session! };
  } catch (e) {
    const msg = (e as Error)?.message?.split('\n')[0] ?? String(e);
    loaded = new Error((e as NodeJS.ErrnoException)?.code === 'MODULE_NOT_FOUND' ? 'onnxruntime-node is not installed' : msg);
  }
  return loaded;
}

/** Whether the onnxruntime engine can run here (onnxruntime-node installed and loadable). */
export function ortAvailable(): boolean {
  return !(loadOrt() instanceof Error);
}

/** The loaded onnxruntime-node, or a one-line SpError saying why not (for an explicit SP_ENGINE=ort). */
export function requireOrt(): Ort {
  const o = loadOrt();
  if (o instanceof Error) throw new SpError('UNSUPPORTED', `engine "ort" needs onnxruntime-node: ${o.message}`);
  return o;
}

/** The onnxruntime version in use, undefined when it cannot be loaded. */
export function ortVersion(): string | undefined {
  const o = loadOrt();
  return o instanceof Error ? undefined : o.version;
}

function sessionOptions(files: { path: string; data: Uint8Array }[], threads = gemmThreads()): object {
  return {
    intraOpNumThreads: threads, // $SP_THREADS by default, as for sp's own kernel
    interOpNumThreads: 1, // one node per graph: nothing to run in parallel
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    logSeverityLevel: 3, // errors only: no warnings on stderr
    // No spinning: 49 sessions, each with its own pool, run one after another between tfjs ops;
    // spinning workers of the previous layer would compete with the next one on 2 cores.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    externalData: files,
  };
}

/** An ES2024 resizable ArrayBuffer (Node ≥ 20; typed here as the lib is ES2022): shrinking it gives the memory back at once. */
interface ResizableBuffer extends ArrayBuffer {
  resize(bytes: number): void;
}
const resizableBuffer = (bytes: number): ResizableBuffer =>
  new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ResizableBuffer)(bytes, { maxByteLength: bytes });

const bytes = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

class OrtLinear implements Linear {
  private norms: { row?: Float32Array; col?: Float32Array } = {};
  private session: NativeSession | undefined;
  /** W as a tensor for backward passes (stored layout), made on the first one only. */
  private storedW: tfc.Tensor2D | undefined;

  /**
   * `host`: W as stored ([out, in] for 'out-in', [in, out] for 'in-out'), kept when the layer needs
   * it at hand (weights loaded with allowNonfinite, which one-hot products cannot reproduce: 0 · ∞
   * is NaN); otherwise W lives only in onnxruntime. `fromFile(start, count)`: floats
   * [start, start + count) of W as stored, read from the checkpoint (the 'out-in' layer's rows).
   */
  constructor(
    session: NativeSession,
    readonly inDim: number,
    readonly outDim: number,
    private readonly stored: 'in-out' | 'out-in',
    private readonly hasBias: boolean,
    private host: Float32Array | undefined,
    /** W is fed from `host` at every run (not copied into onnxruntime). */
    private readonly wInput = false,
    private readonly fromFile?: (start: number, count: number) => Float32Array,
    /** Column slices 1… of W on the pool's worker threads (the session holds slice 0, cols[0] wide). */
    private readonly slices?: { pool: OrtPool; cols: number[]; ids: number[] },
    /** Its graph has the gelu_new output (c_fc; ortLinear sets it only for 'in-out' layers with a bias). */
    private readonly gelu = false,
  ) {
    this.session = session;
  }

  private get live(): NativeSession {
    if (!this.session) throw new SpError('BAD_INPUT', 'linear layer used after dispose (the model was disposed)');
    return this.session;
  }

  apply(x: tfc.Tensor): tfc.Tensor {
    // The native product is opaque to the tape: dx = dy · Wᵀ (W as stored: [out, in] or [in, out]).
    return withInputGradient(x, this.outDim, (xin) => this.applyOrt(xin), (dy) => tf.matMul(dy, this.storedWeight(), false, this.stored === 'in-out'));
  }

  /** gelu_new(x @ W + b) in the same native call (c_fc); undefined for other layers, under a gradient tape or off the wasm heap. */
  applyGelu(x: tfc.Tensor): tfc.Tensor | undefined {
    if (!this.gelu || tf.engine().state.gradientDepth > 0 || !wasmHeap()) return undefined;
    return this.applyOrt(x, 'g');
  }

  private storedWeight(): tfc.Tensor2D {
    if (!this.storedW) {
      const shape: [number, number] = this.stored === 'out-in' ? [this.outDim, this.inDim] : [this.inDim, this.outDim];
      this.storedW = tf.keep(tf.tensor2d(this.storedFloats(), shape));
    }
    return this.storedW;
  }

  private applyOrt(x: tfc.Tensor, out: 'y' | 'g' = 'y'): tfc.Tensor {
    const K = this.inDim, N = this.outDim;
    if (x.shape.at(-1) !== K || x.dtype !== 'float32') throw new SpError('BAD_INPUT', `linear: needs float32 [..., ${K}], got ${x.dtype} [${x.shape}]`);
    const shape = [...x.shape.slice(0, -1), N];
    const M = x.size / K;
    if (M === 0) return tf.zeros(shape);
    // On wasm, onnxruntime reads x from and writes y into the tfjs heap directly: no copies.
    const heap = wasmHeap();
    const y = heap ? heapTensor(heap.makeOutput(shape, 'float32')) : undefined; // before taking views: it may grow the heap
    try {
      const xs = readNow(x);
      const ys = y ? heap!.typedArrayFromHeap(y) : new Float32Array(M * N);
      this.run(xs, ys, M, out);
      return y ?? tf.tensor(ys, shape, 'float32');
    } catch (e) {
      y?.dispose();
      throw e;
    }
  }

  /** ys [M, N] = output `out` of the graph for xs [M, K]. */
  private run(xs: Float32Array, ys: Float32Array, M: number, out: LinearOutput): void {
    const x: OrtTensor = { type: 'float32', dims: [M, this.inDim], data: xs, location: 'cpu' };
    const y: OrtTensor = { type: 'float32', dims: [M, this.outDim], data: ys, location: 'cpu' };
    const sl = this.slices;
    if (sl) {
      const session = this.live;
      const K = this.inDim, n0 = sl.cols[0];
      const local = (xp: Float32Array, yp: Float32Array, rows: number) =>
        session.run({ x: { type: 'float32', dims: [rows, K], data: xp, location: 'cpu' } }, { [out]: { type: 'float32', dims: [rows, n0], data: yp, location: 'cpu' } }, {});
      sl.pool.run(xs, ys, M, K, sl.cols, sl.ids, local, out);
      return;
    }
    if (gemmThreads() > 1) pool?.park(); // this session's own pool thread needs the other core
    const feeds: Feeds = { x };
    if (this.wInput) feeds.W = { type: 'float32', dims: this.stored === 'in-out' ? [this.inDim, this.outDim] : [this.outDim, this.inDim], data: this.host!, location: 'cpu' };
    this.live.run(feeds, { [out]: y }, {}); // y is written in place (a pre-allocated output)
  }

  /** W as stored: the kept copy, else the file ('out-in'), else onnxruntime ('in-out'). */
  private storedFloats(): Float32Array {
    return this.host ?? this.fromFile?.(0, this.inDim * this.outDim) ?? this.readBack();
  }

  /** W [in, out] of an 'in-out' layer from onnxruntime: one-hot rows e_i · W = W[i, :] exactly (0 · w = 0, w + 0 = w). */
  private readBack(): Float32Array {
    const K = this.inDim, N = this.outDim;
    const w = new Float32Array(K * N);
    const rows = Math.min(K, 256);
    const eye = new Float32Array(rows * K);
    for (let r0 = 0; r0 < K; r0 += rows) {
      const n = Math.min(rows, K - r0);
      eye.fill(0);
      for (let r = 0; r < n; r++) eye[r * K + r0 + r] = 1;
      this.run(eye.subarray(0, n * K), w.subarray(r0 * N, (r0 + n) * N), n, this.hasBias ? 'xw' : 'y');
    }
    return w;
  }

  /** W [in, out] as a new array. */
  private inOut(): Float32Array {
    if (this.stored === 'in-out') return this.host ? this.host.slice() : this.readBack();
    const K = this.inDim, N = this.outDim, h = this.storedFloats();
    const out = new Float32Array(K * N);
    for (let j = 0; j < N; j++) for (let i = 0; i < K; i++) out[i * N + j] = h[j * K + i];
    return out;
  }

  outputWeights(ids: tfc.Tensor1D): tfc.Tensor2D {
    this.live;
    const idx = ids.dataSync();
    const K = this.inDim, N = this.outDim;
    for (const j of idx) if (!(j >= 0 && j < N)) throw new RangeError(`index ${j} out of range [0, ${N})`);
    const out = new Float32Array(idx.length * K);
    if (this.stored === 'out-in') {
      for (let i = 0; i < idx.length; i++) out.set(this.host?.subarray(idx[i] * K, (idx[i] + 1) * K) ?? this.fromFile!(idx[i] * K, K), i * K);
    } else {
      const w = this.host ?? this.readBack();
      for (let i = 0; i < idx.length; i++) for (let k = 0; k < K; k++) out[i * K + k] = w[k * N + idx[i]];
    }
    return tf.tensor2d(out, [idx.length, K]);
  }

  weight(): tfc.Tensor2D {
    this.live;
    return tf.tensor2d(this.inOut(), [this.inDim, this.outDim]);
  }

  /** Squared norms of W's rows (byRow) or columns, in float64, from W in its stored layout. */
  private sumSquares(byRow: boolean): Float32Array {
    this.live;
    const K = this.inDim, N = this.outDim;
    const w = this.storedFloats();
    const sq = new Float64Array(byRow ? K : N);
    // Stored element (i, j) of W [in, out]: out-in at [j·K + i], in-out at [i·N + j].
    if (this.stored === 'out-in') {
      for (let j = 0; j < N; j++) for (let i = 0; i < K; i++) sq[byRow ? i : j] += w[j * K + i] * w[j * K + i];
    } else {
      for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) sq[byRow ? i : j] += w[i * N + j] * w[i * N + j];
    }
    return Float32Array.from(sq, Math.sqrt);
  }

  rowNorms(): Float32Array {
    return (this.norms.row ??= this.sumSquares(true));
  }

  colNorms(): Float32Array {
    return (this.norms.col ??= this.sumSquares(false));
  }

  dispose(): void {
    if (this.session && this.slices) this.slices.ids.forEach((id, i) => this.slices!.pool.dispose(i, id));
    this.session?.dispose();
    this.session = undefined;
    this.host = undefined;
    this.storedW?.dispose();
    this.storedW = undefined;
  }
}

/**
 * One layer y = x @ W + b in onnxruntime. `w`: W as `stored` ([in, out] or [out, in]); `keep`: hold
 * on to `w` (the caller must not reuse it then), else onnxruntime's copy is the only one.
 */
export function ortLinear(inDim: number, outDim: number, stored: 'in-out' | 'out-in', w: Float32Array, b: Float32Array | undefined, keep: boolean, what = 'linear', fromFile?: (start: number, count: number) => Float32Array, sliced = true, gelu = false): Linear {
  const ort = requireOrt();
  gelu &&= stored === 'in-out' && b !== undefined; // linearGraph adds the gelu output only there
  // A kept W is fed at every run (no second copy in onnxruntime).
  const wInput = keep;
  // Block-sized layers are sliced over the pool (ort-pool.ts); the unembedding is faster whole, on
  // onnxruntime's own threads (measured at 1, 8 and 832 rows: 4.4 / 7.4 / 286 ms whole, 5.6 / 7.6 / 360 sliced).
  const parts = !sliced || wInput || !sliceable(inDim, outDim) ? 1 : Math.min(gemmThreads(), Math.floor(outDim / 16));
  if (parts > 1) return slicedLinear(ort, inDim, outDim, stored, w, b, parts, what, fromFile, gelu);
  const graph = linearGraph(inDim, outDim, stored, b !== undefined, wInput, gelu);
  const files = wInput ? [] : [{ path: W_FILE, data: bytes(w) }];
  if (b) files.push({ path: B_FILE, data: bytes(b) });
  const session = loadSession(ort, graph, sessionOptions(files), what);
  return new OrtLinear(session, inDim, outDim, stored, b !== undefined, keep ? w : undefined, wInput, fromFile, undefined, gelu);
}

function loadSession(ort: Ort, graph: Uint8Array, options: object, what: string): NativeSession {
  const session = new ort.Session();
  try {
    session.loadModel(graph.buffer as ArrayBuffer, graph.byteOffset, graph.byteLength, options);
  } catch (e) {
    throw new SpError('UNSUPPORTED', `onnxruntime could not load layer ${what}: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
  }
  return session;
}

let pool: OrtPool | undefined;
/** Largest W (floats) cut into slices: GPT-2 xl's MLP layers (1600 × 6400) are 10.2M. */
const SLICED_MAX = 1 << 24;
const sliceable = (inDim: number, outDim: number) => inDim * outDim <= SLICED_MAX && outDim >= 32;
/**
 * Fewest bytes of sliceable weights for which a model uses the pool: a worker thread costs 10 MB
 * (Node 20) to 18 MB (Node 24) of its own, worth it where it saves ~1.5 ms of a decode step (GPT-2
 * small's blocks are 340 MB), not for toy models whose products take microseconds.
 */
const POOL_MIN_BYTES = 128 << 20;
/** Slice 0's W and b while its session is built (onnxruntime copies them), reused by every layer of a load. */
let sliceBuf = new Float32Array(0);

/** Gives back the load-time slice buffer (loadLinears calls it when every layer is built). */
function releaseSliceBuffers(): void {
  sliceBuf = new Float32Array(0);
}

/**
 * W cut into `parts` column slices (multiples of 16 columns, MLAS' panel width), slice 0 in a
 * session on this thread and the others on the pool's workers, each a one-thread session
 * (ort-pool.ts says why). A slice's W and b are copied out of `w` ('in-out': its columns; 'out-in':
 * its rows, already contiguous) and then held only by onnxruntime.
 */
function slicedLinear(ort: Ort, K: number, N: number, stored: 'in-out' | 'out-in', w: Float32Array, b: Float32Array | undefined, parts: number, what: string, fromFile?: (start: number, count: number) => Float32Array, gelu = false): Linear {
  pool ??= new OrtPool(require.resolve('onnxruntime-node/dist/binding'));
  pool.grow(parts - 1);
  const per = Math.ceil(N / parts / 16) * 16;
  const cols = Array.from({ length: parts }, (_, p) => Math.max(0, Math.min(per, N - p * per))).filter((n) => n > 0);
  const ids: number[] = [];
  let session: NativeSession | undefined;
  try {
    let c0 = 0;
    for (let p = 0; p < cols.length; p++) {
      const n = cols[p];
      // Each slice is cut into one buffer reused from slice to slice and layer to layer:
      // onnxruntime copies it when the session is built (a worker's, after the pool sends it over).
      const need = (K + 1) * n;
      if (sliceBuf.length < need) sliceBuf = new Float32Array(need);
      const ws = sliceBuf.subarray(0, K * n);
      if (stored === 'out-in') ws.set(w.subarray(c0 * K, (c0 + n) * K));
      else for (let i = 0; i < K; i++) ws.set(w.subarray(i * N + c0, i * N + c0 + n), i * n);
      const files = [{ path: W_FILE, data: ws }];
      if (b) {
        const bs = sliceBuf.subarray(K * n, K * n + n);
        bs.set(b.subarray(c0, c0 + n));
        files.push({ path: B_FILE, data: bs });
      }
      const graph = linearGraph(K, n, stored, b !== undefined, false, gelu);
      if (p === 0) session = loadSession(ort, graph, sessionOptions(files.map((f) => ({ path: f.path, data: bytes(f.data) })), 1), what);
      else ids.push(pool.load(p - 1, { graph, files }, { ...sessionOptions([], 1), externalData: undefined }, K, n));
      c0 += n;
    }
  } catch (e) {
    session?.dispose();
    ids.forEach((id, i) => pool!.dispose(i, id));
    throw e instanceof SpError ? e : new SpError('UNSUPPORTED', `onnxruntime could not load layer ${what}: ${String((e as Error)?.message ?? e).split('\n')[0]}`);
  }
  return new OrtLinear(session!, K, N, stored, b !== undefined, undefined, false, fromFile, { pool, cols, ids }, gelu);
}

export const ortEngine: Engine = {
  name: 'ort',
  batchMatMul: ortBatchMatMul,
  attention: ortAttention,
  softmax: (x) => ortUnary('Softmax', x),
  gelu: (x) => ortUnary('FastGelu', x),
  loadLinears(up: Uploader, specs: readonly LinearSpec[]): EngineLinears {
    requireOrt();
    // W is read into one reused buffer (onnxruntime copies it), except where this side keeps it:
    // weights with allowNonfinite, and 'out-in' layers with a bias (no bias-free product to read
    // W back through). Bias-free 'out-in' layers (the tied unembedding) read rows from the file.
    const keeps = (s: LinearSpec) => up.nonfiniteAllowed || (s.stored === 'out-in' && s.bias !== undefined);
    // Largest first, into a resizable buffer shrunk to each next layer's size: the unembedding's
    // 154 MB (GPT-2 small) is returned to the system before the block layers load, instead of
    // staying until a garbage collection, and the load peaks at ~3 copies of the largest W.
    const size = (s: LinearSpec) => s.inDim * s.outDim;
    const order = specs.map((_, i) => i).sort((a, b) => size(specs[b]) - size(specs[a]));
    const most = Math.max(0, ...specs.filter((s) => !keeps(s)).map(size));
    const scratch = resizableBuffer(most * 4);
    const linears: Linear[] = new Array(specs.length);
    const pooled = specs.reduce((a, s) => a + (!keeps(s) && sliceable(s.inDim, s.outDim) ? s.inDim * s.outDim * 4 : 0), 0) >= POOL_MIN_BYTES;
    try {
      for (const i of order) {
        const s = specs[i];
        const keep = keeps(s);
        if (!keep) scratch.resize(size(s) * 4);
        const w = up.floats(s.weight, size(s), keep ? undefined : new Float32Array(scratch, 0, size(s)));
        const b = s.bias === undefined ? undefined : up.floats(s.bias, s.outDim);
        const fromFile = s.stored === 'out-in' && !keep ? up.rangeReader(s.weight) : undefined;
        linears[i] = ortLinear(s.inDim, s.outDim, s.stored, w, b, keep, s.weight, fromFile, pooled, s.gelu === true);
      }
      scratch.resize(0);
      releaseSliceBuffers();
      return { linears, arenas: 0, release: () => {} };
    } catch (e) {
      scratch.resize(0);
      releaseSliceBuffers();
      for (const l of linears) l?.dispose();
      throw e;
    }
  },
};

/** Sessions without weights (attention's batched products), by graph and thread count, kept for the process. */
const graphSessions = new Map<string, NativeSession>();

function graphSession(key: string, threads: number, graph: () => Uint8Array): NativeSession {
  let session = graphSessions.get(`${key}:${threads}`);
  if (!session) {
    const g = graph();
    session = new (requireOrt().Session)();
    session.loadModel(g.buffer as ArrayBuffer, g.byteOffset, g.byteLength, sessionOptions([], threads));
    graphSessions.set(`${key}:${threads}`, session);
  }
  if (threads > 1) pool?.park(); // the session's own pool thread needs the other core
  return session;
}

/**
 * Small products (decode steps over short contexts) run faster on the calling thread alone than
 * split: waking a pool thread costs more than it saves below ~1M multiply-adds (measured: 8 rows ×
 * 12 heads at 66 keys, QKᵀ + pattern·V 200 → 160 µs; at 500 keys two threads win, 1.0 vs 1.7 ms).
 */
const threadsFor = (macs: number) => (macs < 1 << 20 ? 1 : gemmThreads());

/**
 * Runs `session` on float32 inputs read in place from the heap (plus `extra` small inputs as they
 * are), into new outputs of the given shapes (written in place).
 */
function runOnHeap(session: NativeSession, inputs: Record<string, tfc.Tensor>, outputs: Record<string, number[]>, extra: Feeds = {}): tfc.Tensor[] {
  const heap = wasmHeap();
  const shapes = Object.values(outputs);
  const made = heap ? shapes.map((shape) => heapTensor(heap.makeOutput(shape, 'float32'))) : []; // before the views: it may grow the heap
  try {
    const t = (dims: number[], data: Float32Array): OrtTensor => ({ type: 'float32', dims, data, location: 'cpu' });
    const feeds: Feeds = { ...extra };
    for (const [name, x] of Object.entries(inputs)) feeds[name] = t(x.shape as number[], readNow(x));
    const hosts = shapes.map((shape, i) => (heap ? heap.typedArrayFromHeap(made[i]) : new Float32Array(shape.reduce((a, b) => a * b, 1))));
    const fetches: Feeds = {};
    Object.keys(outputs).forEach((name, i) => (fetches[name] = t(shapes[i], hosts[i])));
    session.run(feeds, fetches, {});
    return heap ? made : hosts.map((h, i) => tf.tensor(h, shapes[i], 'float32'));
  } catch (e) {
    tf.dispose(made);
    throw e;
  }
}

const rank4 = (...ts: tfc.Tensor[]) => ts.every((t) => t.rank === 4 && t.dtype === 'float32' && t.size > 0);

/**
 * alpha · a @ b (transB: @ bᵀ) for rank-4 float32 tensors with equal leading dims, in onnxruntime
 * (attention's QKᵀ and pattern·V: tfjs' batched matmul on wasm is scalar code). tfjs' own matMul
 * under a gradient tape, where the native product would be invisible.
 */
export function ortBatchMatMul(a: tfc.Tensor, b: tfc.Tensor, transB: boolean, alpha = 1): tfc.Tensor {
  const [B0, B1, M, K] = a.shape as number[];
  const N = transB ? b.shape[2]! : b.shape[3]!;
  if (tf.engine().state.gradientDepth > 0 || !rank4(a, b) || b.shape[0] !== B0 || b.shape[1] !== B1 || (transB ? b.shape[3] : b.shape[2]) !== K) return tfjsBatchMatMul(a, b, transB, alpha);
  const session = graphSession(`bmm:${transB ? 1 : 0}:${alpha}`, threadsFor(B0 * B1 * M * N * K), () => batchMatMulGraph(transB, alpha));
  return runOnHeap(session, { a, b }, { c: [B0, B1, M, N] })[0];
}

const int64 = (values: number[]): OrtTensor => ({ type: 'int64', dims: [values.length], data: BigInt64Array.from(values, BigInt), location: 'cpu' });

/**
 * The fused attention core (upload.ts AttentionCore): the cache grown by copies.ts appendFromQkv
 * (in place where the buffers have room), then onnx-graph.ts attentionGraph; on the wasm heap only.
 */
export function ortAttention(qkv: tfc.Tensor, past: { k: tfc.Tensor; v: tfc.Tensor; length?: number } | undefined, H: number, alpha: number, bias: tfc.Tensor | undefined): { z: tfc.Tensor; k: tfc.Tensor4D; v: tfc.Tensor4D; length: number } | undefined {
  if (!wasmHeap() || tf.engine().state.gradientDepth > 0 || qkv.rank !== 3 || qkv.dtype !== 'float32' || (bias && bias.dtype !== 'float32')) return undefined;
  const [B, S, D3] = qkv.shape as number[];
  const D = D3 / 3, Dh = D / H;
  const P = past ? (past.length ?? past.k.shape[2]!) : 0;
  if (!Number.isInteger(Dh) || B * S === 0 || (past && !(rank4(past.k, past.v) && past.k.shape[0] === B && past.k.shape[1] === H && past.k.shape[3] === Dh && past.v.shape[2] === past.k.shape[2] && P <= past.k.shape[2]!))) return undefined;
  const k = appendFromQkv(past?.k as tfc.Tensor4D | undefined, P, qkv, 1, H)!;
  const v = appendFromQkv(past?.v as tfc.Tensor4D | undefined, P, qkv, 2, H)!;
  const fresh = [k, v].filter((t) => t !== past?.k && t !== past?.v); // new buffers (not grown in place)
  try {
    const T = P + S, C = k.shape[2];
    const session = graphSession(`attn:${H}:${Dh}:${alpha}:${bias ? 1 : 0}`, threadsFor(2 * B * H * S * T * Dh), () => attentionGraph(H, Dh, alpha, bias !== undefined));
    const inputs: Record<string, tfc.Tensor> = bias ? { qkv, k, v, bias } : { qkv, k, v };
    const [z] = runOnHeap(session, inputs, { z: [B, S, D] }, { T: int64([T]), pads: int64([0, 0, 0, 0, 0, 0, 0, C - T]) });
    return { z, k, v, length: T };
  } catch (e) {
    tf.dispose(fresh);
    throw e;
  }
}

/**
 * softmax (last axis) or gelu_new of x on the heap, with the kernel the fused calls run (attention's
 * Softmax, c_fc's FastGelu), on this thread alone like the sliced layers' sessions; undefined off
 * the heap or under a gradient tape.
 */
function ortUnary(op: 'Softmax' | 'FastGelu', x: tfc.Tensor): tfc.Tensor | undefined {
  if (!wasmHeap() || tf.engine().state.gradientDepth > 0 || x.dtype !== 'float32' || x.rank === 0 || x.size === 0) return undefined;
  const session = graphSession(`${op}:${x.rank}`, 1, () => unaryGraph(op, x.rank));
  return runOnHeap(session, { x }, { y: x.shape as number[] })[0];
}
