/** Model parameters loaded once, in the layouts the forward pass wants: big matrices packed into arenas for sp's kernel (wasm/cpu) or uploaded as tfjs tensors (other backends), the rest as tfjs tensors. */
import fs from 'node:fs';
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import { heapTensor, wasmHeap, type WasmHeap } from '../backend/heap.js';
import { matmulFromEnv } from '../backend/env.js';
import { SpError } from '../errors.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import { LITTLE_ENDIAN, numel } from '../weights/safetensors.js';
import { Arena, gemmSupported, padK, SCRATCH_BYTES } from '../backend/gemm/arena.js';
import { releaseArenas } from '../backend/gemm/pool.js';
import type { GPT2Config } from './config.js';
import { PackedLinear, TensorLinear, type Linear } from './linear.js';

export interface BlockWeights {
  ln1w: tfc.Tensor1D; ln1b: tfc.Tensor1D;
  qkv: Linear; //  c_attn:  [d_model → 3*d_model], outputs q|k|v
  o: Linear; //    c_proj:  [d_model → d_model]
  ln2w: tfc.Tensor1D; ln2b: tfc.Tensor1D;
  fc: Linear; //   c_fc:    [d_model → d_mlp]  (FF keys are the columns of its W)
  proj: Linear; // c_proj:  [d_mlp → d_model]  (FF values are the rows of its W)
}

export interface DeviceWeights {
  /** The tied unembedding W_U = W_Eᵀ, [d_model → d_vocab]; token embeddings are its output weights. */
  unembed: Linear;
  wpe: tfc.Tensor2D; // [n_ctx, d_model]
  blocks: BlockWeights[];
  lnfw: tfc.Tensor1D; lnfb: tfc.Tensor1D;
  /** Owners of the packed matrices (wasm/cpu): one per ≤ 3.5 GiB, released by disposeWeights. */
  arenas: Arena[];
}

/**
 * Big matrices in an Arena for sp's kernel on the wasm and cpu backends; $SP_MATMUL=tfjs keeps them
 * as tfjs tensors (XNNPACK), e.g. to compare.
 */
export function usePackedMatmul(): boolean {
  if (matmulFromEnv() === 'tfjs') return false; // any value but sp / tfjs is an SpError
  return (tf.getBackend() === 'wasm' || tf.getBackend() === 'cpu') && gemmSupported();
}

export interface UploadOptions {
  /** Load weights that are NaN or ±Infinity (refused by default: e.g. a bad fp16 conversion). */
  allowNonfinite?: boolean;
}

/** Rows of a [*, cols] float32 tensor per ~8 MB read: large tensors are read and rearranged in blocks. */
const rowsPerChunk = (cols: number) => Math.max(1, Math.floor((8 << 20) / (4 * cols)));

/**
 * Reads tensors from the checkpoint into backend tensors. On wasm with F32 files the bytes go from
 * the file straight into a buffer allocated on the wasm heap: no intermediate JS copies, so loading
 * touches each weight byte once and the process peaks at about the weights' size (the generic path
 * holds a Buffer, a decoded Float32Array and the heap copy of the largest tensors at once).
 *
 * Every value is checked to be finite as it is loaded (once per tensor; packed matrices by the wasm
 * kernel, block by block while the block is in cache): NaN weights would otherwise give garbage
 * (NaN logits, "!!!!" text) with no error.
 */
class Uploader {
  private fd: number | undefined;
  private readonly heap: WasmHeap | undefined;

  constructor(private readonly ckpt: Checkpoint, private readonly allowNonfinite = false) {
    this.heap = wasmHeap();
  }

  /** Refuses tensor `name` if the floats just read from it include NaN or ±Infinity. */
  private checkValues(name: string, f: Float32Array): void {
    if (!this.allowNonfinite && !allFinite(f)) throw nonfiniteError(this.ckpt, name);
  }

  /** checkValues for `n` floats at byte address `p` of an arena. */
  private checkArena(name: string, arena: Arena, p: number, n: number): void {
    if (!this.allowNonfinite && arena.nonfinite(p, n) > 0) throw nonfiniteError(this.ckpt, name);
  }

  /** F32 data in a little-endian process: file bytes are the floats, read them in place. */
  private fileF32(name: string): boolean {
    return LITTLE_ENDIAN && this.ckpt.info(name).dtype === 'F32';
  }

  private direct(name: string): boolean {
    return this.heap !== undefined && this.fileF32(name);
  }

  private readInto(name: string, dst: Uint8Array, offset = 0): void {
    this.fd ??= fs.openSync(this.ckpt.file.path, 'r');
    const t = this.ckpt.info(name);
    let done = 0;
    while (done < dst.byteLength) {
      const n = fs.readSync(this.fd, dst, done, dst.byteLength - done, t.begin + offset + done);
      if (n === 0) throw new Error(`${this.ckpt.file.path}: unexpected end of file in ${name}`);
      done += n;
    }
  }

  /** A [rows, cols] tensor as float32 row blocks of ~8 MB (F32 files: read in place; others: decoded whole). */
  private *rowBlocks(name: string, rows: number, cols: number): Generator<{ r0: number; nr: number; src: Float32Array }> {
    if (!this.fileF32(name)) {
      yield { r0: 0, nr: rows, src: this.ckpt.read(name) };
      return;
    }
    const chunkRows = rowsPerChunk(cols);
    const scratch = new Float32Array(Math.min(rows, chunkRows) * cols);
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const nr = Math.min(chunkRows, rows - r0);
      const src = scratch.subarray(0, nr * cols);
      this.readInto(name, new Uint8Array(src.buffer, 0, src.byteLength), r0 * cols * 4);
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
  packTransposed(name: string, rows: number, cols: number, arena: Arena, dst: number, stride: number): void {
    if (!this.fileF32(name)) {
      this.copyTransposed(name, rows, cols, arena.f32(), dst / 4, stride);
      this.checkArena(name, arena, dst, cols * stride); // the padding is zeros
      return;
    }
    const chunkRows = rowsPerChunk(cols);
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const nr = Math.min(chunkRows, rows - r0);
      const src = arena.scratch(nr * cols * 4);
      this.readInto(name, new Uint8Array(arena.memory.buffer, src, nr * cols * 4), r0 * cols * 4);
      this.checkArena(name, arena, src, nr * cols);
      arena.transpose(src, dst + r0 * 4, nr, cols, stride);
    }
  }

  /** Copies a [rows, cols] tensor into the arena row by row at byte address `dst`, `stride` floats per row. */
  copyRows(name: string, rows: number, cols: number, arena: Arena, dst: number, stride: number): void {
    if (stride === cols && this.fileF32(name)) {
      // Straight into place, in ~8 MB blocks: each is checked while it is still in cache.
      const chunkRows = rowsPerChunk(cols);
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const nr = Math.min(chunkRows, rows - r0), at = dst + r0 * cols * 4;
        this.readInto(name, new Uint8Array(arena.memory.buffer, at, nr * cols * 4), r0 * cols * 4);
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

  /** An uninitialised float32 tensor on the wasm heap and its heap view. */
  private alloc(shape: number[]): { info: tfc.TensorInfo; view: Float32Array } {
    const info = this.heap!.makeOutput(shape, 'float32');
    return { info, view: this.heap!.typedArrayFromHeap(info) };
  }

  tensor<T extends tfc.Tensor>(name: string, shape: number[]): T {
    if (!this.direct(name)) {
      const data = this.ckpt.read(name);
      this.checkValues(name, data);
      return tf.tensor(data, shape, 'float32') as T;
    }
    const { info, view } = this.alloc(shape);
    const t = heapTensor<T>(info);
    try {
      this.readInto(name, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
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
      const data = this.ckpt.read(name);
      this.checkValues(name, data);
      const m = tf.tensor2d(data, [rows, cols]);
      const t = tf.transpose(m) as tfc.Tensor2D;
      m.dispose();
      return t;
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
   * Grow the wasm heap once to hold `bytes` (allocate and free one block, never written, so no
   * memory is committed): tensor by tensor it would grow ~20 times in 20% steps; measured ~15% of
   * the load time.
   */
  reserve(bytes: number): void {
    if (this.heap) heapTensor(this.heap.makeOutput([Math.ceil(bytes / 4)], 'float32')).dispose();
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
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
function nonfiniteError(ckpt: Checkpoint, name: string): SpError {
  const t = ckpt.info(name);
  const n = numel(t.shape);
  let count = 0, first = -1, value = 0;
  for (let s = 0; s < n; s += 1 << 20) {
    const v = ckpt.file.readRange(t.name, s, Math.min(1 << 20, n - s));
    for (let i = 0; i < v.length; i++) {
      if (!Number.isFinite(v[i]) && count++ === 0) [first, value] = [s + i, v[i]];
    }
  }
  const what = `${count} non-finite value${count === 1 ? '' : 's'} (first at index ${first}: ${value})`;
  return new SpError('NONFINITE_WEIGHTS', `${ckpt.file.path}: tensor ${t.name} has ${what}; load with allowNonfinite: true (--allow-nonfinite) to skip this check`);
}

export function uploadWeights(ckpt: Checkpoint, opts: UploadOptions = {}): DeviceWeights {
  const up = new Uploader(ckpt, opts.allowNonfinite);
  const made: tfc.Tensor[] = [];
  const keep = <T extends tfc.Tensor>(t: T): T => (made.push(t), t);
  const small = {
    t1: (n: string) => keep(up.tensor<tfc.Tensor1D>(n, [ckpt.info(n).shape[0]])),
    t2: (n: string, r: number, k: number) => keep(up.tensor<tfc.Tensor2D>(n, [r, k])),
  };
  const arenas: Arena[] = [];
  try {
    let linears: Linears;
    if (usePackedMatmul()) {
      linears = packedLinears(ckpt, up, arenas);
    } else {
      up.reserve(ckpt.parameterBytes);
      linears = tensorLinears(ckpt, up, small.t1, keep);
    }
    const c = ckpt.config;
    const blocks = linears.blocks.map((l, i): BlockWeights => {
      const p = `h.${i}.`;
      return {
        ln1w: small.t1(p + 'ln_1.weight'), ln1b: small.t1(p + 'ln_1.bias'), qkv: l.qkv, o: l.o,
        ln2w: small.t1(p + 'ln_2.weight'), ln2b: small.t1(p + 'ln_2.bias'), fc: l.fc, proj: l.proj,
      };
    });
    return { unembed: linears.unembed, wpe: small.t2('wpe.weight', c.nCtx, c.dModel), blocks, lnfw: small.t1('ln_f.weight'), lnfb: small.t1('ln_f.bias'), arenas };
  } catch (e) {
    tf.dispose(made);
    throw e;
  } finally {
    up.close();
  }
}

interface Linears {
  unembed: Linear;
  blocks: { qkv: Linear; o: Linear; fc: Linear; proj: Linear }[];
}

/** Each block's (c_attn, attn.c_proj, c_fc, mlp.c_proj) as [name, in, out]. */
function blockMatrices(c: GPT2Config, i: number): [string, number, number][] {
  const p = `h.${i}.`;
  return [
    [p + 'attn.c_attn', c.dModel, 3 * c.dModel],
    [p + 'attn.c_proj', c.dModel, c.dModel],
    [p + 'mlp.c_fc', c.dModel, c.dMlp],
    [p + 'mlp.c_proj', c.dMlp, c.dModel],
  ];
}

const aligned = (bytes: number) => Math.ceil(bytes / 64) * 64;

/**
 * Weight bytes one arena takes: a wasm32 memory addresses 4 GiB, and each arena keeps room for its
 * scratch. Models above this (gpt2-xl: 6.2 GB) are spread over several arenas, each matrix whole in
 * one. $SP_ARENA_BYTES lowers it (tests exercise the split on tiny models).
 */
export function arenaCapacity(): number {
  const env = Number(process.env.SP_ARENA_BYTES);
  const max = 4 * 2 ** 30 - 2 * SCRATCH_BYTES - (1 << 20);
  return env > 0 ? Math.min(env, max) : max;
}

/** One packed matrix to load: where it comes from, its [in → out] shape, and its bias. */
interface PackedItem {
  name: string;
  k: number;
  n: number;
  bias: boolean;
  bytes: number;
}

function packedLinears(ckpt: Checkpoint, up: Uploader, arenas: Arena[]): Linears {
  const c = ckpt.config;
  const item = (name: string, k: number, n: number, bias: boolean): PackedItem => ({ name, k, n, bias, bytes: aligned(n * padK(k) * 4) + (bias ? aligned(n * 4) : 0) });
  const wteItem = item('wte', c.dModel, c.dVocab, false);
  const blockItems = Array.from({ length: c.nLayer }, (_, i) => blockMatrices(c, i).map(([name, k, n]) => item(name, k, n, true)));
  // Fill arenas in load order, opening a new one when the next matrix would not fit.
  const capacity = arenaCapacity();
  const plan: PackedItem[][] = [];
  for (const it of [wteItem, ...blockItems.flat()]) {
    const last = plan.at(-1);
    if (last && last.reduce((b, x) => b + x.bytes, 0) + it.bytes <= capacity) last.push(it);
    else plan.push([it]);
  }
  const home = new Map<PackedItem, Arena>();
  for (const group of plan) {
    const arena = new Arena(group.reduce((b, x) => b + x.bytes, 0));
    arenas.push(arena);
    for (const it of group) home.set(it, arena);
  }
  const load = (it: PackedItem): Linear => {
    const arena = home.get(it)!;
    const w = arena.alloc(it.n * padK(it.k) * 4);
    if (it === wteItem) {
      up.copyRows('wte.weight', it.n, it.k, arena, w, padK(it.k)); // [V, d] is already [out, in]
      return new PackedLinear(arena, w, 0, it.k, it.n);
    }
    up.packTransposed(it.name + '.weight', it.k, it.n, arena, w, padK(it.k)); // Conv1D [in, out] → [out, in]
    const b = arena.alloc(it.n * 4);
    up.copyRows(it.name + '.bias', 1, it.n, arena, b, it.n);
    return new PackedLinear(arena, w, b, it.k, it.n);
  };
  return {
    unembed: load(wteItem),
    blocks: blockItems.map((items) => {
      const [qkv, o, fc, proj] = items.map(load);
      return { qkv, o, fc, proj };
    }),
  };
}

function tensorLinears(ckpt: Checkpoint, up: Uploader, t1: (n: string) => tfc.Tensor1D, keep: <T extends tfc.Tensor>(t: T) => T): Linears {
  const c = ckpt.config;
  const conv1d = ([name, k, n]: [string, number, number]): Linear =>
    new TensorLinear(keep(up.tensor<tfc.Tensor2D>(name + '.weight', [k, n])), t1(name + '.bias'));
  // Stored transposed, [d_model, d_vocab]: x @ W is several times faster on wasm than x @ Wᵀ.
  const wteT = keep(up.transposed('wte.weight', c.dVocab, c.dModel));
  return {
    unembed: new TensorLinear(wteT),
    blocks: Array.from({ length: c.nLayer }, (_, i) => {
      const [qkv, o, fc, proj] = blockMatrices(c, i).map(conv1d);
      return { qkv, o, fc, proj };
    }),
  };
}

export function disposeWeights(w: DeviceWeights): void {
  tf.dispose([w.wpe, w.lnfw, w.lnfb, ...w.blocks.flatMap((b) => [b.ln1w, b.ln1b, b.ln2w, b.ln2b])]);
  for (const l of [w.unembed, ...w.blocks.flatMap((b) => [b.qkv, b.o, b.fc, b.proj])]) l.dispose();
  releaseArenas(w.arenas); // the workers' references: the memory goes when the last one does
  w.arenas = [];
}
