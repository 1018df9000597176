/**
 * Reading parameters into backend memory: what an engine (engine.ts) is given to load a model's
 * matrices, and the reader it loads them with. backend/ does not know checkpoint files: it reads
 * through `ParameterSource`, which weights/checkpoint.ts's Checkpoint satisfies.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { SpError } from '../errors.js';
import { LITTLE_ENDIAN } from '../platform.js';
import { tf } from './index.js';
import { heapTensor, wasmHeap, type WasmHeap } from './heap.js';
import type { Linear } from './linear.js';

/** Where parameter bytes come from, by canonical tensor name. */
export interface ParameterSource {
  /** `name`: the tensor's name in its file; dtype 'F32' | 'F16' | 'BF16'. */
  info(name: string): { readonly name: string; readonly dtype: string; readonly shape: readonly number[] };
  /** Raw bytes [byteOffset, byteOffset + dst.byteLength) of the tensor's data, into `dst`. */
  readInto(name: string, dst: Uint8Array, byteOffset?: number): void;
  /** The whole tensor as float32 (F16/BF16 upcast). */
  read(name: string): Float32Array;
  /** The file holding the tensor: named in errors; `readRange` takes the name from `info`. */
  fileOf(name: string): { readonly path: string; readRange(fileName: string, start: number, count: number): Float32Array };
  /** Total bytes of parameter data. */
  readonly parameterBytes: number;
}

/**
 * One dense layer y = x @ W + b, W [inDim, outDim], to load as a Linear. `stored` is how the file
 * lays W out: 'in-out' (HF Conv1D, [inDim, outDim]) or 'out-in' ([outDim, inDim], e.g. the token
 * embedding [d_vocab, d_model] used as the tied unembedding).
 */
export interface LinearSpec {
  weight: string;
  bias?: string;
  inDim: number;
  outDim: number;
  stored: 'in-out' | 'out-in';
  /** gelu_new follows (c_fc): an engine may offer both in one call (Linear.applyGelu). */
  gelu?: boolean;
  /**
   * The norms the model reads of this layer (tokenEmbeddingNorms, ffValueNorms): an engine whose
   * memory cannot be read back synchronously (tfjs on webgpu) takes them at load.
   */
  norms?: 'rows' | 'cols';
}

/** A parameter loaded as a plain float32 tfjs tensor of `shape`. */
export interface TensorSpec {
  name: string;
  shape: number[];
}

/**
 * Byte-addressed memory an engine packs matrices into (gemm/arena.ts's Arena): the reader fills it
 * in place, with the memory's own transpose and finiteness check.
 */
export interface PackedMemory {
  readonly memory: WebAssembly.Memory;
  /** A Float32Array over the whole memory. */
  f32(): Float32Array;
  /** Byte address of transient space. */
  scratch(bytes: number): number;
  /** dst[c·stride + r] = src[r·cols + c] (byte addresses of floats). */
  transpose(src: number, dst: number, rows: number, cols: number, stride: number): void;
  /** How many of the `n` floats at byte address `p` are NaN or ±Infinity. */
  nonfinite(p: number, n: number): number;
}

/**
 * Attention after the qkv product in one native call: qkv [B, S, 3·D] and the past cache (k, v
 * [B, H, C, Dh] with their first `length` positions filled, all C when absent) → z [B, S, D] and
 * the cache after this call (buffers with length P + S filled: past's own, grown in place, or new
 * ones; copies.ts appendPositions); `bias` [B or 1, 1, S, T] is added to alpha · q kᵀ before the
 * softmax. Undefined where the engine cannot (a gradient tape, tensors outside its memory): the
 * forward pass then takes the step-by-step ops.
 */
export type AttentionCore = (
  qkv: tfc.Tensor,
  past: { k: tfc.Tensor; v: tfc.Tensor; length?: number } | undefined,
  nHead: number,
  alpha: number,
  bias: tfc.Tensor | undefined,
) => { z: tfc.Tensor; k: tfc.Tensor4D; v: tfc.Tensor4D; length: number } | undefined;

/** A matrix engine: how the Linear layers are held and multiplied. Each engine is one file in backend/. */
export interface Engine {
  readonly name: string;
  /** alpha · a @ b (transB: @ bᵀ), rank 4 (attention's QKᵀ and pattern·V), where the engine has a faster one than tfjs'. */
  readonly batchMatMul?: (a: tfc.Tensor, b: tfc.Tensor, transB: boolean, alpha?: number) => tfc.Tensor;
  /** The fused attention core, where the engine has one. */
  readonly attention?: AttentionCore;
  /**
   * softmax over the last axis and gelu_new, the kernels the engine's fused calls use, for the
   * step-by-step path (so that a hook that only observes never changes a value); undefined where
   * the engine cannot (a gradient tape, tensors outside its memory): then tfjs' / sp's kernels.
   */
  readonly softmax?: (x: tfc.Tensor) => tfc.Tensor | undefined;
  readonly gelu?: (x: tfc.Tensor) => tfc.Tensor | undefined;
  /** Loads every Linear (in `specs` order) through `up`; runs before any other parameter is read. */
  loadLinears(up: Uploader, specs: readonly LinearSpec[]): EngineLinears;
}

export interface EngineLinears {
  linears: Linear[];
  /** Arenas the engine allocated (bench and tests report them; 0 for engines without). */
  arenas: number;
  /** Frees what the engine holds beyond the layers themselves; called after every layer is disposed. */
  release(): void;
}

export interface UploadOptions {
  /** Load weights that are NaN or ±Infinity (refused by default: e.g. a bad fp16 conversion). */
  allowNonfinite?: boolean;
}

/** Rows of a [*, cols] float32 tensor per ~8 MB read: large tensors are read and rearranged in blocks. */
const rowsPerChunk = (cols: number) => Math.max(1, Math.floor((8 << 20) / (4 * cols)));

/**
 * Reads tensors from the source into backend memory. On wasm with F32 files the bytes go from the
 * file straight into a buffer allocated on the wasm heap: no intermediate JS copies, so loading
 * touches each weight byte once and the process peaks at about the weights' size (the generic path
 * holds a Buffer, a decoded Float32Array and the heap copy of the largest tensors at once).
 *
 * Every value is checked to be finite as it is loaded (once per tensor; packed matrices by the wasm
 * kernel, block by block while the block is in cache): NaN weights would otherwise give garbage
 * (NaN logits, "!!!!" text) with no error.
 */
export class Uploader {
  private readonly heap: WasmHeap | undefined;

  constructor(readonly src: ParameterSource, private readonly allowNonfinite = false) {
    this.heap = wasmHeap();
  }

  /** Refuses tensor `name` if the floats just read from it include NaN or ±Infinity. */
  private checkValues(name: string, f: Float32Array): void {
    if (!this.allowNonfinite && !allFinite(f)) throw nonfiniteError(this.src, name);
  }

  /** checkValues for `n` floats at byte address `p` of an arena. */
  private checkArena(name: string, arena: PackedMemory, p: number, n: number): void {
    if (!this.allowNonfinite && arena.nonfinite(p, n) > 0) throw nonfiniteError(this.src, name);
  }

  /** F32 data in a little-endian process: file bytes are the floats, read them in place. */
  private fileF32(name: string): boolean {
    return LITTLE_ENDIAN && this.src.info(name).dtype === 'F32';
  }

  private direct(name: string): boolean {
    return this.heap !== undefined && this.fileF32(name);
  }

  /** A [rows, cols] tensor as float32 row blocks of ~8 MB (F32 files: read in place; others: decoded whole). */
  private *rowBlocks(name: string, rows: number, cols: number): Generator<{ r0: number; nr: number; src: Float32Array }> {
    if (!this.fileF32(name)) {
      yield { r0: 0, nr: rows, src: this.src.read(name) };
      return;
    }
    const chunkRows = rowsPerChunk(cols);
    const scratch = new Float32Array(Math.min(rows, chunkRows) * cols);
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const nr = Math.min(chunkRows, rows - r0);
      const src = scratch.subarray(0, nr * cols);
      this.src.readInto(name, new Uint8Array(src.buffer, 0, src.byteLength), r0 * cols * 4);
      yield { r0, nr, src };
    }
  }

  /** Copies a [rows, cols] tensor into `dst` transposed: dst[at + c·stride + r] = t[r, c] (32×32 blocks, cache-friendly). */
  copyTransposed(name: string, rows: number, cols: number, dst: Float32Array, at: number, stride: number): void {
    for (const { r0, nr, src } of this.rowBlocks(name, rows, cols)) {
      for (let rb = 0; rb < nr; rb += 32) {
        const re = Math.min(nr, rb + 32);
        for (let cb = 0; cb < cols; cb += 32) {
          const ce = Math.min(cols, cb + 32);
          for (let c = cb; c < ce; c++) {
            const o = at + c * stride + r0;
            for (let r = rb; r < re; r++) dst[o + r] = src[r * cols + c];
          }
        }
      }
    }
  }

  /**
   * Copies a [rows, cols] tensor into the arena transposed, at byte address `dst` with `stride`
   * floats per row: F32 row blocks are read into the arena's scratch and transposed by wasm code.
   */
  packTransposed(name: string, rows: number, cols: number, arena: PackedMemory, dst: number, stride: number): void {
    if (!this.fileF32(name)) {
      this.copyTransposed(name, rows, cols, arena.f32(), dst / 4, stride);
      this.checkArena(name, arena, dst, cols * stride); // the padding is zeros
      return;
    }
    const chunkRows = rowsPerChunk(cols);
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const nr = Math.min(chunkRows, rows - r0);
      const src = arena.scratch(nr * cols * 4);
      this.src.readInto(name, new Uint8Array(arena.memory.buffer, src, nr * cols * 4), r0 * cols * 4);
      this.checkArena(name, arena, src, nr * cols);
      arena.transpose(src, dst + r0 * 4, nr, cols, stride);
    }
  }

  /** Copies a [rows, cols] tensor into the arena row by row at byte address `dst`, `stride` floats per row. */
  copyRows(name: string, rows: number, cols: number, arena: PackedMemory, dst: number, stride: number): void {
    if (stride === cols && this.fileF32(name)) {
      // Straight into place, in ~8 MB blocks: each is checked while it is still in cache.
      const chunkRows = rowsPerChunk(cols);
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const nr = Math.min(chunkRows, rows - r0), at = dst + r0 * cols * 4;
        this.src.readInto(name, new Uint8Array(arena.memory.buffer, at, nr * cols * 4), r0 * cols * 4);
        this.checkArena(name, arena, at, nr * cols);
      }
      return;
    }
    const f = arena.f32();
    for (const { r0, nr, src } of this.rowBlocks(name, rows, cols)) {
      for (let r = 0; r < nr; r++) f.set(src.subarray(r * cols, (r + 1) * cols), dst / 4 + (r0 + r) * stride);
    }
    this.checkArena(name, arena, dst, rows * stride);
  }

  /** Whether non-finite weights are let through (engines that re-derive W from products need to know). */
  /**
   * Floats [start, start + count) of tensor `name` (row-major, upcast to float32), read from its file
   * on each call: for engines that hand a matrix to a native library and read rows back later
   * (the file stays open while the model lives). The values are the ones loaded and checked.
   */
  rangeReader(name: string): (start: number, count: number) => Float32Array {
    const file = this.src.fileOf(name);
    const fileName = this.src.info(name).name;
    return (start, count) => file.readRange(fileName, start, count);
  }

  get nonfiniteAllowed(): boolean {
    return this.allowNonfinite;
  }

  /**
   * Tensor `name` (`n` floats) as a Float32Array, checked finite: F32 files are read straight into
   * `into` (or a new array), F16/BF16 are decoded. For engines that hand W to native code.
   */
  floats(name: string, n: number, into?: Float32Array): Float32Array {
    let f: Float32Array;
    if (this.fileF32(name)) {
      f = into ? into.subarray(0, n) : new Float32Array(n);
      this.src.readInto(name, new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    } else {
      f = this.src.read(name);
    }
    if (f.length !== n) throw new SpError('BAD_FILE', `${this.src.fileOf(name).path}: tensor ${name} has ${f.length} values, expected ${n}`);
    this.checkValues(name, f);
    return f;
  }

  /** An uninitialised float32 tensor on the wasm heap and its heap view. */
  private alloc(shape: number[]): { info: tfc.TensorInfo; view: Float32Array } {
    const info = this.heap!.makeOutput(shape, 'float32');
    return { info, view: this.heap!.typedArrayFromHeap(info) };
  }

  tensor<T extends tfc.Tensor>(name: string, shape: number[]): T {
    if (!this.direct(name)) {
      const data = this.src.read(name);
      this.checkValues(name, data);
      return tf.tensor(data, shape, 'float32') as T;
    }
    const { info, view } = this.alloc(shape);
    const t = heapTensor<T>(info);
    try {
      this.src.readInto(name, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      this.checkValues(name, view);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** A [rows, cols] matrix as a tfjs tensor stored transposed, [cols, rows]. */
  transposed(name: string, rows: number, cols: number): tfc.Tensor2D {
    if (!this.direct(name)) {
      // Transposed on the host: the new tensor holds host values until its first upload (the tfjs engine's load-time norms read them).
      const out = new Float32Array(rows * cols);
      this.copyTransposed(name, rows, cols, out, 0, rows);
      this.checkValues(name, out);
      return tf.tensor2d(out, [cols, rows]);
    }
    const { info, view } = this.alloc([cols, rows]);
    const t = heapTensor<tfc.Tensor2D>(info);
    try {
      this.copyTransposed(name, rows, cols, view, 0, rows);
      this.checkValues(name, view);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /**
   * Grow the wasm heap once to hold every parameter (allocate and free one block, never written, so
   * no memory is committed): tensor by tensor it would grow ~20 times in 20% steps; measured ~15% of
   * the load time.
   */
  reserveAll(): void {
    if (this.heap) heapTensor(this.heap.makeOutput([Math.ceil(this.src.parameterBytes / 4)], 'float32')).dispose();
  }
}

/** Whether no value is NaN or ±Infinity. */
function allFinite(f: Float32Array): boolean {
  // x - x is 0 for every finite x and NaN for the others; unrolled: ~2× faster than one at a time.
  let s = 0, i = 0;
  for (const n4 = f.length - (f.length % 4); i < n4; i += 4) s += f[i] - f[i] + (f[i + 1] - f[i + 1]) + (f[i + 2] - f[i + 2]) + (f[i + 3] - f[i + 3]);
  for (; i < f.length; i++) s += f[i] - f[i];
  return s === 0;
}

/** The one-line refusal, with the count and first offender (the tensor re-read from the file, in its own order). */
function nonfiniteError(src: ParameterSource, name: string): SpError {
  const t = src.info(name);
  const file = src.fileOf(name);
  const n = t.shape.reduce((a, b) => a * b, 1);
  let count = 0, first = -1, value = 0;
  for (let s = 0; s < n; s += 1 << 20) {
    const v = file.readRange(t.name, s, Math.min(1 << 20, n - s));
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i]) && count++ === 0) [first, value] = [s + i, v[i]];
    }
  }
  const what = `${count} non-finite value${count === 1 ? '' : 's'} (first at index ${first}: ${value})`;
  return new SpError('NONFINITE_WEIGHTS', `${file.path}: tensor ${t.name} has ${what}; load with allowNonfinite: true (--allow-nonfinite) to skip this check`);
}
