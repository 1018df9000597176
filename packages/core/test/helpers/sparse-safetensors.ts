/**
 * Large safetensors files for laziness tests, written sparse: the header is real, the data section
 * is a hole (reads as zeros, costs no disk) except for the few values a test pokes in.
 */
import fs from 'node:fs';

export interface SparseTensor {
  name: string;
  shape: number[];
}

export interface SparseFile {
  path: string;
  size: number;
  headerBytes: number;
  /** Absolute file offset of element `index` (row-major) of tensor `name` (F32). */
  offset(name: string, index: number): number;
  /** Write float32 `values` at elements `indices` of tensor `name`. */
  poke(name: string, indices: number[], values: number[]): void;
}

/** Write an F32 safetensors file of the given tensors (in this order) with a sparse data section. */
export function writeSparseSafetensors(path: string, tensors: SparseTensor[], metadata: Record<string, string> = { format: 'pt' }): SparseFile {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const begin = new Map<string, number>();
  let off = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes] };
    begin.set(t.name, off);
    off += bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const dataStart = 8 + json.length;
  const size = dataStart + off;
  const fd = fs.openSync(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, json, 0, json.length, 8);
    fs.ftruncateSync(fd, size);
  } finally {
    fs.closeSync(fd);
  }
  const offset = (name: string, index: number): number => {
    const b = begin.get(name);
    if (b === undefined) throw new Error(`no tensor ${name}`);
    return dataStart + b + index * 4;
  };
  return {
    path,
    size,
    headerBytes: dataStart,
    offset,
    poke(name, indices, values) {
      const fd2 = fs.openSync(path, 'r+');
      try {
        const v = Buffer.alloc(4);
        indices.forEach((idx, i) => {
          v.writeFloatLE(values[i], 0);
          fs.writeSync(fd2, v, 0, 4, offset(name, idx));
        });
      } finally {
        fs.closeSync(fd2);
      }
    },
  };
}

/** Count the bytes read through fs.readSync (the library's only read path) while `fn` runs. */
export function countReadBytes<T>(fn: () => T): { result: T; bytes: number; calls: number } {
  const orig = fs.readSync;
  let bytes = 0;
  let calls = 0;
  (fs as { readSync: unknown }).readSync = (...args: unknown[]) => {
    const n = (orig as (...a: unknown[]) => number)(...args);
    bytes += n;
    calls++;
    return n;
  };
  try {
    return { result: fn(), bytes, calls };
  } finally {
    (fs as { readSync: unknown }).readSync = orig;
  }
}
