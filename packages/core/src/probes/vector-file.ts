/**
 * A neuron vector from a file: JSON (an array of numbers, or {"vector": [...]}), NumPy .npy
 * (1-D, little-endian float32/float64, C or Fortran order), or safetensors (one 1-D tensor, or the
 * one named after '#': `vec.safetensors#name`). Strict: anything else is a one-line BAD_FILE.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpError } from '../errors.js';
import { SafetensorsFile } from '../weights/safetensors.js';

export function readVectorFile(spec: string): Float32Array {
  const hash = spec.lastIndexOf('#');
  const isSt = (p: string) => /\.safetensors$/i.test(p);
  const [file, tensor] = hash > 0 && isSt(spec.slice(0, hash)) ? [spec.slice(0, hash), spec.slice(hash + 1)] : [spec, undefined];
  if (!fs.existsSync(file) || !fs.statSync(file).isFile()) throw new SpError('NOT_FOUND', `vector file ${file} not found`);
  const ext = path.extname(file).toLowerCase();
  const v = ext === '.npy' ? parseNpy(fs.readFileSync(file), file)
    : isSt(file) ? readSafetensorsVector(file, tensor)
    : ext === '.json' ? parseJsonVector(fs.readFileSync(file, 'utf8'), file)
    : undefined;
  if (!v) throw new SpError('BAD_FILE', `${file}: unknown vector format "${ext}" (use .json, .npy or .safetensors)`);
  const bad = v.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new SpError('BAD_FILE', `${file}: element ${bad} is not a finite number`);
  if (v.length === 0) throw new SpError('BAD_FILE', `${file}: the vector is empty`);
  return v;
}

export function parseJsonVector(text: string, where = 'JSON vector'): Float32Array {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    throw new SpError('BAD_FILE', `${where}: not valid JSON (${(e as Error).message})`);
  }
  if (x && typeof x === 'object' && !Array.isArray(x) && 'vector' in x) x = (x as { vector: unknown }).vector;
  if (!Array.isArray(x) || !x.every((e) => typeof e === 'number')) {
    throw new SpError('BAD_FILE', `${where}: expected a flat array of numbers or {"vector": [...]}`);
  }
  return Float32Array.from(x as number[]);
}

/** NumPy format 1.0/2.0/3.0: magic, version, header length, a Python-dict header, raw data. */
export function parseNpy(buf: Uint8Array, where = '.npy'): Float32Array {
  const fail = (m: string) => new SpError('BAD_FILE', `${where}: ${m}`);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (buf.length < 10 || magic.some((b, i) => buf[i] !== b)) throw fail('not a .npy file (bad magic)');
  const major = buf[6];
  if (major < 1 || major > 3) throw fail(`unsupported .npy version ${major}.${buf[7]}`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + hlen > buf.length) throw fail('truncated header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(start, start + hlen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw fail('malformed header');
  const dims = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (dims.length !== 1 || !/^\d+$/.test(dims[0])) throw fail(`expected a 1-D array, got shape (${shapeText.trim()})`);
  const n = Number(dims[0]);
  const size = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (!size) throw fail(`dtype '${descr}' is not supported (use little-endian float32 '<f4' or float64 '<f8')`);
  const dataStart = start + hlen;
  if (buf.length - dataStart !== n * size) throw fail(`expected ${n * size} data bytes for shape (${n},), found ${buf.length - dataStart}`);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = size === 4 ? dv.getFloat32(dataStart + 4 * i, true) : dv.getFloat64(dataStart + 8 * i, true);
  return out;
}

function readSafetensorsVector(file: string, name?: string): Float32Array {
  const st = SafetensorsFile.open(file);
  try {
    const names = [...st.tensors.keys()];
    if (name === undefined && names.length !== 1) {
      throw new SpError('BAD_INPUT', `${file} holds ${names.length} tensors: pick one with ${file}#NAME (${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''})`);
    }
    const t = st.info(name ?? names[0]);
    if (t.shape.length !== 1) throw new SpError('BAD_FILE', `${file}: tensor "${t.name}" has shape [${t.shape}], expected a 1-D vector`);
    return st.read(t.name);
  } finally {
    st.close();
  }
}
