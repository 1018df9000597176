/**
 * An arena: one shared WebAssembly.Memory holding a model's large weight matrices in the layout the
 * gemm kernel reads ([out, in], rows padded to 16 floats), plus scratch space for a call's inputs and
 * outputs. Worker threads instantiate the kernel on the same memory, so they read the weights in
 * place: nothing is copied per call except the (small) activations.
 */
import { SpError } from '../../errors.js';
import { relaxedSimdFromEnv } from '../env.js';
import { GEMM_RELAXED_WASM_BASE64, GEMM_WASM_BASE64 } from './wasm-binary.js';

const PAGE = 65536;
const MAX_PAGES = 65536; // wasm32: 4 GiB
/** Scratch (inputs + outputs of one kernel call) stays under this; larger calls are split by rows. */
export const SCRATCH_BYTES = 256 << 20;

export type GemmFn = (W: number, x: number, y: number, bias: number, Kp: number, N: number, n0: number, n1: number, m0: number, m1: number) => void;

let module: WebAssembly.Module | undefined;
let kind: 'fma' | 'simd' | undefined;
/**
 * The compiled kernel (compiled once per process; workers receive the same Module): the relaxed-SIMD
 * FMA variant where the runtime validates it (Node ≥ 22) and $SP_RELAXED_SIMD is not 0, else the
 * plain SIMD one, bit for bit as it always was.
 */
export function gemmModule(): WebAssembly.Module {
  if (!module) {
    const relaxed = Buffer.from(GEMM_RELAXED_WASM_BASE64, 'base64');
    kind = relaxedSimdFromEnv() && WebAssembly.validate(relaxed) ? 'fma' : 'simd';
    module = new WebAssembly.Module(kind === 'fma' ? relaxed : Buffer.from(GEMM_WASM_BASE64, 'base64'));
  }
  return module;
}

/** Which kernel this process runs: 'fma' (relaxed SIMD's f32x4.relaxed_madd) or 'simd' (mul + add). */
export function gemmKernelKind(): 'fma' | 'simd' {
  gemmModule();
  return kind!;
}

let supported: boolean | undefined;
/** Whether this JS engine can run the kernel (wasm SIMD + shared memory); checked once. */
export function gemmSupported(): boolean {
  if (supported === undefined) {
    try {
      gemmModule();
      new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
      supported = true;
    } catch {
      supported = false;
    }
  }
  return supported;
}

/** Rows padded to a multiple of 16 floats: the kernel's inner loop reads 16 at a time. */
export const padK = (k: number): number => Math.ceil(k / 16) * 16;

// Arena ids name memories to the worker pool, which is shared process-wide: so is the counter.
const IDS = Symbol.for('sp.gemm.arenaIds');
const ids = globalThis as { [IDS]?: number };

export class Arena {
  readonly id = (ids[IDS] = (ids[IDS] ?? 0) + 1);
  readonly memory: WebAssembly.Memory;
  readonly gemm: GemmFn;
  /** dst[c·stride + r] = src[r·cols + c] (byte addresses of floats). */
  readonly transpose: (src: number, dst: number, rows: number, cols: number, stride: number) => void;
  /** How many of the `n` floats at byte address `p` are NaN or ±Infinity. */
  readonly nonfinite: (p: number, n: number) => number;
  private top = 64; // byte 0 stays unused: a bias address of 0 means "no bias"
  private views: { buffer: ArrayBufferLike; f32: Float32Array } | undefined;

  /** `bytes`: what the weights will need (allocations beyond it grow the memory). */
  constructor(bytes: number) {
    const pages = Math.ceil((bytes + 64) / PAGE) + 1;
    const maximum = Math.min(MAX_PAGES, pages + Math.ceil((2 * SCRATCH_BYTES) / PAGE));
    if (pages > MAX_PAGES) throw new SpError('UNSUPPORTED', `weights need ${(bytes / 2 ** 30).toFixed(1)} GiB, more than a wasm32 memory holds (4 GiB)`);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum, shared: true });
    const inst = new WebAssembly.Instance(gemmModule(), { env: { mem: this.memory } });
    this.gemm = inst.exports.gemm as GemmFn;
    this.transpose = inst.exports.transpose as Arena['transpose'];
    this.nonfinite = inst.exports.nonfinite as Arena['nonfinite'];
  }

  /** A Float32Array over the whole memory (re-made after the memory grows). */
  f32(): Float32Array {
    const buffer = this.memory.buffer;
    if (this.views?.buffer !== buffer) this.views = { buffer, f32: new Float32Array(buffer) };
    return this.views.f32;
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
  }

  /** Byte address of `bytes` fresh (zeroed) bytes, 64-byte aligned; lives as long as the arena. */
  alloc(bytes: number): number {
    const at = this.top;
    this.ensure(at + bytes);
    this.top = Math.ceil((at + bytes) / 64) * 64; // not bitwise: addresses pass 2^31
    return at;
  }

  /** Byte address of transient space after every allocation: valid until the next alloc or scratch call. */
  scratch(bytes: number): number {
    this.ensure(this.top + bytes);
    return this.top;
  }
}
