/**
 * A tiny, independent safetensors reader for the reference GPT-2 (nothing from packages/core/src).
 *
 * Format: 8-byte little-endian u64 header length N, then N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {...}}, then the data region;
 * offsets are relative to the start of the data region. F32, F16, BF16 (and F64) decode to Float64Array.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RefConfig, RefWeights } from './gpt2-ref.js';

export interface MiniTensor {
  dtype: string;
  shape: number[];
  data: Float64Array;
}

const ITEM_SIZE: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

/** IEEE 754 binary16 bits -> number (subnormals, infinities and NaN included). */
export function f16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits -> number: the upper half of a float32. */
export function bf16ToNumber(bits: number, scratch: DataView = new DataView(new ArrayBuffer(4))): number {
  scratch.setUint32(0, (bits & 0xffff) << 16 >>> 0, true);
  return scratch.getFloat32(0, true);
}

function decode(dtype: string, bytes: Uint8Array, count: number): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(count);
  switch (dtype) {
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(i * 8, true);
      break;
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = f16ToNumber(view.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const scratch = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) out[i] = bf16ToNumber(view.getUint16(i * 2, true), scratch);
      break;
    }
    default:
      throw new Error(`safetensors-mini: unsupported dtype ${dtype}`);
  }
  return out;
}

/** Parses a whole safetensors file. Tensors are decoded lazily by `get`. */
export function parseSafetensors(bytes: Uint8Array): {
  metadata: Record<string, string> | undefined;
  names: string[];
  info(name: string): { dtype: string; shape: number[] };
  get(name: string): MiniTensor;
} {
  if (bytes.byteLength < 8) throw new Error('safetensors-mini: file shorter than 8 bytes');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen > bytes.byteLength - 8) throw new Error(`safetensors-mini: header length ${headerLen} exceeds file size ${bytes.byteLength}`);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<string, unknown>;
  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;

  type Entry = { dtype: string; shape: number[]; begin: number; end: number };
  const entries = new Map<string, Entry>();
  let metadata: Record<string, string> | undefined;
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets) || e.data_offsets.length !== 2) {
      throw new Error(`safetensors-mini: malformed header entry for ${name}`);
    }
    const shape = e.shape.map(Number);
    const [begin, end] = e.data_offsets.map(Number);
    const itemSize = ITEM_SIZE[e.dtype];
    if (itemSize === undefined) throw new Error(`safetensors-mini: unsupported dtype ${e.dtype} for ${name}`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (!(begin >= 0 && end >= begin && end <= dataLen)) throw new Error(`safetensors-mini: data_offsets [${begin}, ${end}] of ${name} outside data region of ${dataLen} bytes`);
    if (end - begin !== count * itemSize) throw new Error(`safetensors-mini: ${name} has ${end - begin} bytes, expected ${count * itemSize} for ${e.dtype}${JSON.stringify(shape)}`);
    entries.set(name, { dtype: e.dtype, shape, begin, end });
  }

  const decoded = new Map<string, Float64Array>();
  const entry = (name: string): Entry => {
    const e = entries.get(name);
    if (!e) throw new Error(`safetensors-mini: no tensor named ${name}`);
    return e;
  };
  return {
    metadata,
    names: [...entries.keys()],
    info: (name) => {
      const e = entry(name);
      return { dtype: e.dtype, shape: e.shape.slice() };
    },
    get: (name) => {
      const e = entry(name);
      let data = decoded.get(name);
      if (!data) {
        const count = e.shape.reduce((a, b) => a * b, 1);
        data = decode(e.dtype, bytes.subarray(dataStart + e.begin, dataStart + e.end), count);
        decoded.set(name, data);
      }
      return { dtype: e.dtype, shape: e.shape.slice(), data };
    },
  };
}

function positiveInt(cfg: Record<string, unknown>, keys: string[]): number {
  for (const k of keys) {
    const v = cfg[k];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return v;
  }
  throw new Error(`safetensors-mini: config.json lacks a positive integer ${keys.join(' / ')}`);
}

export function configFromJson(cfg: Record<string, unknown>): RefConfig {
  const eps = cfg.layer_norm_epsilon;
  return {
    nLayer: positiveInt(cfg, ['n_layer']),
    nHead: positiveInt(cfg, ['n_head']),
    dModel: positiveInt(cfg, ['n_embd']),
    nCtx: positiveInt(cfg, ['n_positions', 'n_ctx']),
    vocabSize: positiveInt(cfg, ['vocab_size']),
    eps: typeof eps === 'number' && eps > 0 ? eps : 1e-5,
  };
}

/**
 * Reads `config.json` and `model.safetensors` from `dir`. Tensor names lose an optional
 * `transformer.` prefix; `get` accepts the canonical (unprefixed) name.
 */
export function readSafetensorsDir(dir: string): RefWeights & {
  names(): string[];
  shape(name: string): number[];
  metadata: Record<string, string> | undefined;
} {
  const config = configFromJson(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>);
  const file = parseSafetensors(readFileSync(path.join(dir, 'model.safetensors')));
  const PREFIX = 'transformer.';
  const canonical = new Map<string, string>(); // canonical name -> name in file
  for (const name of file.names) {
    const short = name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name;
    if (canonical.has(short)) throw new Error(`safetensors-mini: both ${canonical.get(short)} and ${name} map to ${short}`);
    canonical.set(short, name);
  }
  const fileName = (name: string): string => {
    const n = canonical.get(name);
    if (n === undefined) throw new Error(`safetensors-mini: no tensor ${name} in ${dir}`);
    return n;
  };
  return {
    config,
    metadata: file.metadata,
    names: () => [...canonical.keys()],
    shape: (name) => file.info(fileName(name)).shape,
    get: (name) => file.get(fileName(name)).data,
  };
}
