/** Model parameters uploaded to the tfjs backend once, in the layouts the forward pass wants. */
import fs from 'node:fs';
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../backend/index.js';
import type { Checkpoint } from '../weights/checkpoint.js';
import type { GPT2Config } from './config.js';

export interface BlockWeights {
  ln1w: tfc.Tensor1D; ln1b: tfc.Tensor1D;
  wqkv: tfc.Tensor2D; bqkv: tfc.Tensor1D; // [d_model, 3*d_model], columns q|k|v
  wo: tfc.Tensor2D; bo: tfc.Tensor1D; //     [d_model, d_model]
  ln2w: tfc.Tensor1D; ln2b: tfc.Tensor1D;
  wfc: tfc.Tensor2D; bfc: tfc.Tensor1D; //   [d_model, d_mlp]  (FF keys are its columns)
  wproj: tfc.Tensor2D; bproj: tfc.Tensor1D; // [d_mlp, d_model] (FF values are its rows)
}

export interface DeviceWeights {
  /** Token embedding stored transposed, [d_model, d_vocab]: the unembedding (tied) is then a plain x @ W, several times faster on wasm than x @ Wᵀ. */
  wteT: tfc.Tensor2D;
  wpe: tfc.Tensor2D; // [n_ctx, d_model]
  blocks: BlockWeights[];
  lnfw: tfc.Tensor1D; lnfb: tfc.Tensor1D;
}

interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): tfc.TensorInfo;
  typedArrayFromHeap(t: tfc.TensorInfo): Float32Array;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Reads tensors from the checkpoint into backend tensors. On wasm with F32 files the bytes go from
 * the file straight into a buffer allocated on the wasm heap: no intermediate JS copies, so loading
 * touches each weight byte once and the process peaks at about the weights' size (the generic path
 * holds a Buffer, a decoded Float32Array and the heap copy of the largest tensors at once).
 */
class Uploader {
  private fd: number | undefined;
  private readonly heap: WasmHeapBackend | undefined;

  constructor(private readonly ckpt: Checkpoint) {
    this.heap = tf.getBackend() === 'wasm' && LITTLE_ENDIAN ? (tf.backend() as unknown as WasmHeapBackend) : undefined;
  }

  private direct(name: string): boolean {
    return this.heap !== undefined && this.ckpt.info(name).dtype === 'F32';
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

  /** An uninitialised float32 tensor on the wasm heap and its heap view. */
  private alloc(shape: number[]): { info: tfc.TensorInfo; view: Float32Array } {
    const info = this.heap!.makeOutput(shape, 'float32');
    return { info, view: this.heap!.typedArrayFromHeap(info) };
  }

  tensor<T extends tfc.Tensor>(name: string, shape: number[]): T {
    if (!this.direct(name)) return tf.tensor(this.ckpt.read(name), shape, 'float32') as T;
    const { info, view } = this.alloc(shape);
    const t = tf.engine().makeTensorFromTensorInfo(info) as T;
    try {
      this.readInto(name, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** A [rows, cols] matrix stored transposed, [cols, rows], transposing in row chunks (small scratch). */
  transposed(name: string, rows: number, cols: number): tfc.Tensor2D {
    if (!this.direct(name)) {
      const m = tf.tensor2d(this.ckpt.read(name), [rows, cols]);
      const t = tf.transpose(m) as tfc.Tensor2D;
      m.dispose();
      return t;
    }
    const { info, view } = this.alloc([cols, rows]);
    const t = tf.engine().makeTensorFromTensorInfo(info) as tfc.Tensor2D;
    try {
      const chunkRows = Math.max(1, Math.floor((8 << 20) / (4 * cols))); // ~8 MB of source rows at a time
      const scratch = new Float32Array(chunkRows * cols);
      for (let r0 = 0; r0 < rows; r0 += chunkRows) {
        const nr = Math.min(chunkRows, rows - r0);
        const src = scratch.subarray(0, nr * cols);
        this.readInto(name, new Uint8Array(src.buffer, 0, src.byteLength), r0 * cols * 4);
        // dst[c, r0 + i] = src[i, c]: each destination row gets a contiguous run of nr values.
        for (let c = 0; c < cols; c++) {
          const o = c * rows + r0;
          for (let i = 0; i < nr; i++) view[o + i] = src[i * cols + c];
        }
      }
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
    if (this.heap) tf.engine().makeTensorFromTensorInfo(this.heap.makeOutput([Math.ceil(bytes / 4)], 'float32')).dispose();
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

export function uploadWeights(ckpt: Checkpoint): DeviceWeights {
  const c: GPT2Config = ckpt.config;
  const up = new Uploader(ckpt);
  const made: tfc.Tensor[] = [];
  const keep = <T extends tfc.Tensor>(t: T): T => (made.push(t), t);
  const t1 = (n: string) => keep(up.tensor<tfc.Tensor1D>(n, [ckpt.info(n).shape[0]]));
  const t2 = (n: string, r: number, k: number) => keep(up.tensor<tfc.Tensor2D>(n, [r, k]));
  try {
    up.reserve(ckpt.parameterBytes);
    const wteT = keep(up.transposed('wte.weight', c.dVocab, c.dModel));
    const blocks: BlockWeights[] = [];
    for (let i = 0; i < c.nLayer; i++) {
      const p = `h.${i}.`;
      blocks.push({
        ln1w: t1(p + 'ln_1.weight'), ln1b: t1(p + 'ln_1.bias'),
        wqkv: t2(p + 'attn.c_attn.weight', c.dModel, 3 * c.dModel), bqkv: t1(p + 'attn.c_attn.bias'),
        wo: t2(p + 'attn.c_proj.weight', c.dModel, c.dModel), bo: t1(p + 'attn.c_proj.bias'),
        ln2w: t1(p + 'ln_2.weight'), ln2b: t1(p + 'ln_2.bias'),
        wfc: t2(p + 'mlp.c_fc.weight', c.dModel, c.dMlp), bfc: t1(p + 'mlp.c_fc.bias'),
        wproj: t2(p + 'mlp.c_proj.weight', c.dMlp, c.dModel), bproj: t1(p + 'mlp.c_proj.bias'),
      });
    }
    return { wteT, wpe: t2('wpe.weight', c.nCtx, c.dModel), blocks, lnfw: t1('ln_f.weight'), lnfb: t1('ln_f.bias') };
  } catch (e) {
    tf.dispose(made);
    throw e;
  } finally {
    up.close();
  }
}

export function disposeWeights(w: DeviceWeights): void {
  tf.dispose([w.wteT, w.wpe, w.lnfw, w.lnfb, ...w.blocks.flatMap((b) => Object.values(b))]);
}
