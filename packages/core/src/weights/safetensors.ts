/**
 * A strict safetensors reader and writer (https://huggingface.co/docs/safetensors).
 *
 * Layout: u64 little-endian header length N | N bytes of JSON header | data.
 * Header: { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {str: str} },
 * offsets relative to the start of the data section. We validate everything up front
 * and read tensors (or slices of them) by byte offset, never the whole file.
 */
import fs from 'node:fs';
import { SpError } from '../errors.js';

export type DType = 'F32' | 'F16' | 'BF16';
const BYTES: Record<DType, number> = { F32: 4, F16: 2, BF16: 2 };
/** Largest header we accept (the reference implementation uses 100 MB). */
const MAX_HEADER = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute byte offsets in the file. */
  begin: number;
  end: number;
}

export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  readonly fileSize: number;
  private fd: number | undefined;

  private constructor(readonly path: string, fd: number, fileSize: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.fd = fd;
    this.fileSize = fileSize;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new SpError('NOT_FOUND', `cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    try {
      const size = fs.fstatSync(fd).size;
      const { tensors, metadata } = parseHeader(fd, size, path);
      return new SafetensorsFile(path, fd, size, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SpError('NOT_FOUND', `tensor "${name}" not found in ${this.path}`);
    return t;
  }

  /** The whole tensor, upcast to float32. */
  read(name: string): Float32Array {
    const t = this.info(name);
    return decode(t.dtype, this.readBytes(t.begin, t.end - t.begin));
  }

  /** Elements [start, start+count) of the flattened tensor (row-major), upcast to float32. */
  readRange(name: string, start: number, count: number): Float32Array {
    const t = this.info(name);
    const n = numel(t.shape);
    if (start < 0 || count < 0 || start + count > n) {
      throw new SpError('OUT_OF_RANGE', `range [${start}, ${start + count}) outside tensor "${name}" of ${n} elements`);
    }
    const b = BYTES[t.dtype];
    return decode(t.dtype, this.readBytes(t.begin + start * b, count * b));
  }

  /** Row r of a 2-D tensor. */
  readRow(name: string, r: number): Float32Array {
    const [rows, cols] = this.shape2(name);
    if (!Number.isInteger(r) || r < 0 || r >= rows) throw new SpError('OUT_OF_RANGE', `row ${r} outside [0, ${rows - 1}] of "${name}"`);
    return this.readRange(name, r * cols, cols);
  }

  /**
   * Column c of a 2-D tensor: one strided read per row, but only over the bytes spanned
   * (rows * cols * bytes / chunk), in chunks, so memory stays small.
   */
  readColumn(name: string, c: number): Float32Array {
    const t = this.info(name);
    const [rows, cols] = this.shape2(name);
    if (!Number.isInteger(c) || c < 0 || c >= cols) throw new SpError('OUT_OF_RANGE', `column ${c} outside [0, ${cols - 1}] of "${name}"`);
    const b = BYTES[t.dtype];
    const out = new Float32Array(rows);
    const rowsPerChunk = Math.max(1, Math.floor((4 << 20) / (cols * b)));
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const nr = Math.min(rowsPerChunk, rows - r0);
      const span = (nr - 1) * cols * b + b;
      const bytes = this.readBytes(t.begin + (r0 * cols + c) * b, span);
      for (let i = 0; i < nr; i++) out[r0 + i] = decode(t.dtype, bytes.subarray(i * cols * b, i * cols * b + b))[0];
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private shape2(name: string): [number, number] {
    const t = this.info(name);
    if (t.shape.length !== 2) throw new SpError('BAD_INPUT', `tensor "${name}" has shape [${t.shape}], expected 2-D`);
    return [t.shape[0], t.shape[1]];
  }

  private readBytes(pos: number, len: number): Uint8Array {
    if (this.fd === undefined) throw new SpError('BAD_INPUT', `${this.path} is closed`);
    const buf = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, buf, done, len - done, pos + done);
      if (n === 0) throw new SpError('BAD_FILE', `${this.path}: unexpected end of file`);
      done += n;
    }
    return buf;
  }
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function parseHeader(fd: number, size: number, path: string): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const bad = (msg: string) => new SpError('BAD_FILE', `${path} is not a valid safetensors file: ${msg}`);
  if (size < 8) throw bad(size === 0 ? 'file is empty' : `file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const n = lenBuf.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER)) throw bad(`header length ${n} is implausible`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw bad(`header length ${headerLen} exceeds file size ${size} (truncated?)`);
  const hbuf = Buffer.alloc(headerLen);
  fs.readSync(fd, hbuf, 0, headerLen, 8);
  let header: unknown;
  try {
    header = JSON.parse(hbuf.toString('utf8'));
  } catch {
    throw bad('header is not valid JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Object.values(v).some((x) => typeof x !== 'string')) throw bad('__metadata__ must map strings to strings');
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`entry "${name}" is not an object`);
    if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)} (F32, F16, BF16 supported)`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor "${name}" has an invalid shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) throw bad(`tensor "${name}" has invalid data_offsets`);
    const shape = e.shape as number[];
    const expected = numel(shape) * BYTES[e.dtype];
    if (off[1] - off[0] !== expected) throw bad(`tensor "${name}" spans ${off[1] - off[0]} bytes but shape [${shape}] of ${e.dtype} needs ${expected}`);
    if (off[1] > dataLen) throw bad(`tensor "${name}" ends at byte ${off[1]} beyond the ${dataLen}-byte data section (truncated?)`);
    tensors.set(name, { name, dtype: e.dtype, shape, begin: dataStart + off[0], end: dataStart + off[1] });
  }
  // The data section must be covered exactly: no overlaps, no holes, nothing trailing.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  for (const t of sorted) {
    if (t.begin < cursor) throw bad(`tensor "${t.name}" overlaps another tensor`);
    if (t.begin > cursor) throw bad(`hole of ${t.begin - cursor} bytes before tensor "${t.name}"`);
    cursor = t.end;
  }
  if (cursor !== size) throw bad(`${size - cursor} trailing bytes after the last tensor`);
  return { tensors, metadata };
}

// ---- dtype conversion ----

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

export function f32ToF16(x: number): number {
  // Round-to-nearest-even via the float32 bit pattern.
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return (bits >>> 16) | 0x40;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

function decode(dtype: DType, bytes: Uint8Array): Float32Array {
  if (dtype === 'F32') {
    const out = new Float32Array(bytes.length / 4);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const n = bytes.length / 2;
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = F16_TABLE[dv.getUint16(2 * i, true)];
  }
  return out;
}

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = f16ToF32(i);
  return t;
})();

// ---- writer ----

export interface TensorToWrite {
  name: string;
  dtype?: DType;
  shape: number[];
  data: ArrayLike<number>;
}

/** Encode tensors as a safetensors buffer (keys sorted, data contiguous, as the reference writer does). */
export function encodeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Buffer {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Buffer[] = [];
  for (const t of sorted) {
    const dtype = t.dtype ?? 'F32';
    if (numel(t.shape) !== t.data.length) throw new SpError('BAD_INPUT', `tensor "${t.name}": shape [${t.shape}] needs ${numel(t.shape)} values, got ${t.data.length}`);
    const buf = Buffer.alloc(t.data.length * BYTES[dtype]);
    for (let i = 0; i < t.data.length; i++) {
      if (dtype === 'F32') buf.writeFloatLE(t.data[i], 4 * i);
      else buf.writeUInt16LE(dtype === 'F16' ? f32ToF16(t.data[i]) : f32ToBf16(t.data[i]), 2 * i);
    }
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + buf.length] };
    offset += buf.length;
    chunks.push(buf);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // align data to 8 bytes like the reference writer
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), ...chunks]);
}

export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  fs.writeFileSync(path, encodeSafetensors(tensors, metadata));
}
