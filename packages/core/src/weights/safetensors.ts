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
import { LITTLE_ENDIAN } from '../platform.js';

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
  private fd: number | undefined;

  private constructor(readonly path: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.fd = fd;
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
      const st = fs.fstatSync(fd);
      // A directory opens fine on Linux and then fails with EISDIR on read: say so up front.
      if (!st.isFile()) throw new SpError('BAD_FILE', `${path} is not a regular file`);
      const size = st.size;
      const { tensors, metadata } = parseHeader(fd, size, path);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SpError('NOT_FOUND', `tensor ${q(name)} not found in ${this.path}`);
    return t;
  }

  /** The whole tensor, upcast to float32. */
  read(name: string): Float32Array {
    const t = this.info(name);
    return decode(t.dtype, this.readBytes(t.begin, t.end - t.begin));
  }

  /**
   * Raw bytes [byteOffset, byteOffset + dst.byteLength) of tensor `name`'s data, read straight into
   * `dst` (e.g. a view of the wasm heap: no intermediate copy).
   */
  readInto(name: string, dst: Uint8Array, byteOffset = 0): void {
    const t = this.info(name);
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + dst.byteLength > t.end - t.begin) {
      throw new SpError('OUT_OF_RANGE', `bytes [${byteOffset}, ${byteOffset + dst.byteLength}) outside tensor ${q(name)} of ${t.end - t.begin} bytes`);
    }
    this.readFully(dst, t.begin + byteOffset);
  }

  /** Elements [start, start+count) of the flattened tensor (row-major), upcast to float32. */
  readRange(name: string, start: number, count: number): Float32Array {
    const t = this.info(name);
    const n = numel(t.shape);
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > n) {
      throw new SpError('OUT_OF_RANGE', `range [${start}, ${start + count}) outside tensor ${q(name)} of ${n} elements`);
    }
    const b = BYTES[t.dtype];
    return decode(t.dtype, this.readBytes(t.begin + start * b, count * b));
  }

  /** Row r of a 2-D tensor. */
  readRow(name: string, r: number): Float32Array {
    const [rows, cols] = this.shape2(name);
    if (!Number.isInteger(r) || r < 0 || r >= rows) throw new SpError('OUT_OF_RANGE', `row ${r} outside [0, ${rows - 1}] of ${q(name)}`);
    return this.readRange(name, r * cols, cols);
  }

  /**
   * Column c of a 2-D tensor without reading the tensor: when rows lie at least a page apart
   * (every real checkpoint) one element-sized read per row, so the bytes read are rows * itemsize
   * whatever the tensor's size; for narrow tensors the spanned bytes in chunks of at most 4 MB.
   */
  readColumn(name: string, c: number): Float32Array {
    const t = this.info(name);
    const [rows, cols] = this.shape2(name);
    if (!Number.isInteger(c) || c < 0 || c >= cols) throw new SpError('OUT_OF_RANGE', `column ${c} outside [0, ${cols - 1}] of ${q(name)}`);
    const b = BYTES[t.dtype];
    const stride = cols * b;
    const out = new Float32Array(rows);
    if (stride >= 4096) {
      const one = Buffer.alloc(8);
      for (let r = 0; r < rows; r++) out[r] = decode(t.dtype, this.readBytes(t.begin + r * stride + c * b, b, one))[0];
      return out;
    }
    const rowsPerChunk = Math.max(1, Math.floor((4 << 20) / stride));
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const nr = Math.min(rowsPerChunk, rows - r0);
      const bytes = this.readBytes(t.begin + r0 * stride + c * b, (nr - 1) * stride + b);
      for (let i = 0; i < nr; i++) out[r0 + i] = decode(t.dtype, bytes.subarray(i * stride, i * stride + b))[0];
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  private shape2(name: string): [number, number] {
    const t = this.info(name);
    if (t.shape.length !== 2) throw new SpError('BAD_INPUT', `tensor ${q(name)} has shape [${t.shape}], expected 2-D`);
    return [t.shape[0], t.shape[1]];
  }

  /** `len` bytes at absolute offset `pos` (into `into` when given, which must hold them). */
  private readBytes(pos: number, len: number, into?: Buffer): Uint8Array {
    const buf = into ? into.subarray(0, len) : Buffer.allocUnsafe(len);
    this.readFully(buf, pos);
    return buf;
  }

  /** Fills `dst` from absolute offset `pos`: the one loop that reads this file's bytes. */
  private readFully(dst: Uint8Array, pos: number): void {
    if (this.fd === undefined) throw new SpError('BAD_INPUT', `${this.path} is closed`);
    let done = 0;
    while (done < dst.byteLength) {
      const n = fs.readSync(this.fd, dst, done, dst.byteLength - done, pos + done);
      if (n === 0) throw new SpError('BAD_FILE', `${this.path}: unexpected end of file`);
      done += n;
    }
  }
}

/** A tensor name as JSON: quoted, and one line whatever it contains. */
const q = (name: string): string => JSON.stringify(name);

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
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw bad('__metadata__ must map strings to strings');
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`entry ${q(name)} is not an object`);
    if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') throw bad(`tensor ${q(name)} has unsupported dtype ${JSON.stringify(e.dtype)} (F32, F16, BF16 supported)`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor ${q(name)} has an invalid shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[1] < off[0]) throw bad(`tensor ${q(name)} has invalid data_offsets`);
    const shape = e.shape as number[];
    const expected = numel(shape) * BYTES[e.dtype];
    if (off[1] - off[0] !== expected) throw bad(`tensor ${q(name)} spans ${off[1] - off[0]} bytes but shape [${shape}] of ${e.dtype} needs ${expected}`);
    if (off[1] > dataLen) throw bad(`tensor ${q(name)} ends at byte ${off[1]} beyond the ${dataLen}-byte data section (truncated?)`);
    tensors.set(name, { name, dtype: e.dtype, shape, begin: dataStart + off[0], end: dataStart + off[1] });
  }
  // The data section must be covered exactly: no overlaps, no holes, nothing trailing.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  for (const t of sorted) {
    if (t.begin < cursor) throw bad(`tensor ${q(t.name)} overlaps another tensor`);
    if (t.begin > cursor) throw bad(`hole of ${t.begin - cursor} bytes before tensor ${q(t.name)}`);
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

/**
 * Round a float64 that is not a float32 straight to a binary format with `expBits` exponent and
 * `mantBits` mantissa bits (nearest, ties to even). Going through float32 first would round twice.
 */
function roundDirect(x: number, expBits: number, mantBits: number): number {
  const bias = (1 << (expBits - 1)) - 1;
  const inf = ((1 << expBits) - 1) << mantBits;
  const sign = x < 0 ? 1 << (expBits + mantBits) : 0;
  const a = Math.abs(x);
  // Exponent of the unit in the last place: that of a normal number, clamped to the subnormal one.
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  e = Math.max(e, 1 - bias);
  const q = a * 2 ** (mantBits - e); // significand in ulps (implicit bit included for normals), exact
  let f = Math.floor(q);
  const rem = q - f;
  if (rem > 0.5 || (rem === 0.5 && f % 2 === 1)) f++;
  // Normals: (biased exponent - 1) << mantBits + significand; a carry moves into the exponent.
  const bits = (e + bias - 1) * 2 ** mantBits + f;
  return sign | Math.min(bits, inf);
}

export function f32ToF16(x: number): number {
  if (Math.fround(x) !== x && x === x) return roundDirect(x, 5, 10);
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
  if (Math.fround(x) !== x && x === x) return roundDirect(x, 8, 7);
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
    const table = f16Table();
    for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(2 * i, true)];
  }
  return out;
}

// Built on first F16 decode (65536 entries, ~10 ms): most processes never read F16.
let F16_TABLE: Float32Array | undefined;
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) F16_TABLE[i] = f16ToF32(i);
  }
  return F16_TABLE;
}

// ---- writer ----

export interface TensorToWrite {
  name: string;
  dtype?: DType;
  shape: number[];
  data: ArrayLike<number>;
}

/** Encode tensors as a safetensors buffer (keys sorted, data contiguous, as the reference writer does). */
export function encodeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Buffer {
  return Buffer.concat(safetensorsChunks(tensors, metadata));
}

/** The file as a list of buffers (8-byte length, header, then each tensor's bytes). */
function safetensorsChunks(tensors: TensorToWrite[], metadata?: Record<string, string>): Buffer[] {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 0; i < sorted.length; i++) {
    const t = sorted[i];
    if (t.name === '__metadata__' || (i > 0 && sorted[i - 1].name === t.name)) throw new SpError('BAD_INPUT', `tensor name ${q(t.name)} is reserved or used twice`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new SpError('BAD_INPUT', `tensor ${q(t.name)}: shape [${t.shape}] must hold non-negative integers`);
  }
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const chunks: Buffer[] = [];
  for (const t of sorted) {
    const dtype = t.dtype ?? 'F32';
    if (numel(t.shape) !== t.data.length) throw new SpError('BAD_INPUT', `tensor ${q(t.name)}: shape [${t.shape}] needs ${numel(t.shape)} values, got ${t.data.length}`);
    let buf: Buffer;
    if (dtype === 'F32' && t.data instanceof Float32Array && LITTLE_ENDIAN) {
      // Fast path (hundreds of MB for real-size checkpoints): the bytes are already the file's
      // layout; view them without a copy.
      buf = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    } else {
      buf = Buffer.alloc(t.data.length * BYTES[dtype]);
      for (let i = 0; i < t.data.length; i++) {
        if (dtype === 'F32') buf.writeFloatLE(t.data[i], 4 * i);
        else buf.writeUInt16LE(dtype === 'F16' ? f32ToF16(t.data[i]) : f32ToBf16(t.data[i]), 2 * i);
      }
    }
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + buf.length] };
    offset += buf.length;
    chunks.push(buf);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8); // align data to 8 bytes like the reference writer
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return [len, Buffer.from(json, 'utf8'), ...chunks];
}

/** Writes tensor by tensor: files may exceed what one Buffer holds (gpt2-xl is 6.4 GB). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  const chunks = safetensorsChunks(tensors, metadata);
  const fd = fs.openSync(path, 'w');
  try {
    for (const c of chunks) {
      for (let done = 0; done < c.length; ) done += fs.writeSync(fd, c, done, c.length - done);
    }
  } finally {
    fs.closeSync(fd);
  }
}
