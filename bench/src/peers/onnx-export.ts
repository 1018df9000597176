/**
 * The bench's random GPT-2 checkpoint as an ONNX decoder for transformers.js: the graph optimum
 * exports for `gpt2` with past (inputs input_ids, attention_mask, position_ids,
 * past_key_values.{i}.key/value [b, heads, past, head_dim]; outputs logits, present.{i}.key/value),
 * built op by op with onnx-proto (protobufjs code generated from onnx.proto) and the same weights
 * read from model.safetensors. Written once to bench/.weights/<preset>-onnx/ with config.json
 * (no eos: the bench decodes a fixed number of tokens), so transformers.js loads it from a local path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import type * as OnnxProto from 'onnx-proto';
import { benchRoot } from '../paths.js';
import { presetConfig, type BenchPreset } from '../weights.js';

const require = createRequire(import.meta.url);
const { onnx } = require('onnx-proto') as typeof OnnxProto;
type INode = OnnxProto.onnx.INodeProto;
type ITensor = OnnxProto.onnx.ITensorProto;
const F32 = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;

/** Tensors of a safetensors file: name → [shape, byte range in the file]. */
function safetensorsIndex(file: string): { fd: number; tensors: Map<string, { shape: number[]; begin: number; end: number }> } {
  const fd = fs.openSync(file, 'r');
  const len = Buffer.alloc(8);
  fs.readSync(fd, len, 0, 8, 0);
  const n = Number(len.readBigUInt64LE(0));
  const head = Buffer.alloc(n);
  fs.readSync(fd, head, 0, n, 8);
  const h = JSON.parse(head.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, { shape: number[]; begin: number; end: number }>();
  for (const [k, v] of Object.entries(h)) {
    if (k === '__metadata__') continue;
    if (v.dtype !== 'F32') throw new Error(`onnx export: ${k} is ${v.dtype}, expected F32`);
    tensors.set(k, { shape: v.shape, begin: 8 + n + v.data_offsets[0], end: 8 + n + v.data_offsets[1] });
  }
  return { fd, tensors };
}

export function onnxDir(preset: BenchPreset): string {
  return path.join(benchRoot, '.weights', `${preset}-onnx`);
}

/** Writes <preset>-onnx/{onnx/model.onnx, config.json, generation_config.json} from `srcDir` unless present. */
export function ensureOnnx(preset: BenchPreset, srcDir: string, log: (s: string) => void = () => {}): string {
  const dir = onnxDir(preset);
  const modelFile = path.join(dir, 'onnx', 'model.onnx');
  const st = path.join(srcDir, 'model.safetensors');
  if (fs.existsSync(modelFile) && fs.statSync(modelFile).mtimeMs >= fs.statSync(st).mtimeMs) return dir;
  const t0 = performance.now();
  const c = presetConfig(preset);
  const { dModel: d, nHead: H, nLayer: L, dVocab: V } = c;
  const hd = d / H;
  const { fd, tensors } = safetensorsIndex(st);
  const inits: ITensor[] = [];
  const nodes: INode[] = [];
  const weight = (hf: string): string => {
    const t = tensors.get(hf);
    if (!t) throw new Error(`onnx export: ${hf} missing from ${st}`);
    const raw = Buffer.alloc(t.end - t.begin);
    fs.readSync(fd, raw, 0, raw.length, t.begin);
    inits.push({ name: hf, dataType: F32, dims: t.shape, rawData: raw });
    return hf;
  };
  let k = 0;
  const constI64 = (vals: number[], dims = [vals.length]): string => {
    const name = `const_i64_${k++}`;
    inits.push({ name, dataType: I64, dims, rawData: Buffer.from(BigInt64Array.from(vals.map(BigInt)).buffer) });
    return name;
  };
  const constF32 = (v: number): string => {
    const name = `const_f32_${k++}`;
    inits.push({ name, dataType: F32, dims: [], rawData: Buffer.from(Float32Array.of(v).buffer) });
    return name;
  };
  const op = (opType: string, inputs: string[], attrs: OnnxProto.onnx.IAttributeProto[] = [], nOut = 1, outNames?: string[]): string[] => {
    const outs = outNames ?? Array.from({ length: nOut }, (_, i) => `${opType}_${k}_${i}`);
    nodes.push({ opType, input: inputs, output: outs, name: `${opType}_${k++}`, attribute: attrs });
    return outs;
  };
  const one = (opType: string, inputs: string[], attrs: OnnxProto.onnx.IAttributeProto[] = [], outName?: string) => op(opType, inputs, attrs, 1, outName ? [outName] : undefined)[0];
  const ints = (name: string, v: number[]) => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
  const int = (name: string, v: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i: v });
  const flt = (name: string, v: number) => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v });
  const layerNorm = (x: string, p: string) => one('LayerNormalization', [x, weight(`${p}.weight`), weight(`${p}.bias`)], [int('axis', -1), flt('epsilon', c.layerNormEps)]);
  const linear = (x: string, p: string) => one('Add', [one('MatMul', [x, weight(`${p}.weight`)]), weight(`${p}.bias`)]);

  // Embeddings.
  const wte = weight('wte.weight');
  let h = one('Add', [one('Gather', [wte, 'input_ids']), one('Gather', [weight('wpe.weight'), 'position_ids'])]);
  // Mask bias [b, 1, s, T]: 0 where query i (absolute past+i) may read key j (j ≤ past+i and not padding), else -1e9.
  const s = one('Gather', [one('Shape', ['input_ids']), constI64([1])]); // [1]
  const T = one('Gather', [one('Shape', ['attention_mask']), constI64([1])]); // [1]
  const past = one('Squeeze', [one('Sub', [T, s])]); // scalar
  const ones = one('ConstantOfShape', [one('Concat', [s, T], [int('axis', 0)])], [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: { dataType: F32, dims: [1], rawData: Buffer.from(Float32Array.of(1).buffer) } }]);
  const causal = one('Trilu', [ones, past], [int('upper', 0)]); // [s, T]
  const am = one('Unsqueeze', [one('Cast', ['attention_mask'], [int('to', F32)]), constI64([1, 2])]); // [b, 1, 1, T]
  const allowed = one('Mul', [causal, am]); // [b, 1, s, T]
  const bias = one('Mul', [one('Sub', [allowed, constF32(1)]), constF32(1e9)]);
  const heads = constI64([0, 0, H, hd]);
  const merge = constI64([0, 0, d]);
  const split = constI64([d, d, d]);
  const scale = constF32(1 / Math.sqrt(hd));
  const c0 = constF32(0.5), c1 = constF32(1), cA = constF32(Math.sqrt(2 / Math.PI)), cB = constF32(0.044715);
  for (let i = 0; i < L; i++) {
    const p = `h.${i}`;
    const [q, kk, v] = op('Split', [linear(layerNorm(h, `${p}.ln_1`), `${p}.attn.c_attn`), split], [int('axis', 2)], 3);
    const toHeads = (x: string) => one('Transpose', [one('Reshape', [x, heads])], [ints('perm', [0, 2, 1, 3])]); // [b, H, s, hd]
    const key = one('Concat', [`past_key_values.${i}.key`, toHeads(kk)], [int('axis', 2)], `present.${i}.key`);
    const val = one('Concat', [`past_key_values.${i}.value`, toHeads(v)], [int('axis', 2)], `present.${i}.value`);
    const scores = one('Add', [one('Mul', [one('MatMul', [toHeads(q), one('Transpose', [key], [ints('perm', [0, 1, 3, 2])])]), scale]), bias]);
    const ctx = one('MatMul', [one('Softmax', [scores], [int('axis', -1)]), val]);
    const merged = one('Reshape', [one('Transpose', [ctx], [ints('perm', [0, 2, 1, 3])]), merge]);
    h = one('Add', [h, linear(merged, `${p}.attn.c_proj`)]);
    // gelu_new(x) = 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), written out as optimum exports it.
    const x = linear(layerNorm(h, `${p}.ln_2`), `${p}.mlp.c_fc`);
    const x3 = one('Mul', [one('Mul', [x, x]), x]);
    const inner = one('Mul', [one('Add', [x, one('Mul', [x3, cB])]), cA]);
    const g = one('Mul', [one('Mul', [x, c0]), one('Add', [one('Tanh', [inner]), c1])]);
    h = one('Add', [h, linear(g, `${p}.mlp.c_proj`)]);
  }
  // Tied unembedding: logits = ln_f(h) · W_Eᵀ (ORT folds the transpose of the initializer once).
  one('MatMul', [layerNorm(h, 'ln_f'), one('Transpose', [wte], [ints('perm', [1, 0])])], [], 'logits');
  fs.closeSync(fd);

  const dimT = (names: Array<string | number>) => ({ tensorType: { elemType: 0, shape: { dim: names.map((n) => (typeof n === 'number' ? { dimValue: n } : { dimParam: n })) } } });
  const io = (name: string, elem: number, dims: Array<string | number>) => ({ name, type: { tensorType: { ...dimT(dims).tensorType, elemType: elem } } });
  const graph: OnnxProto.onnx.IGraphProto = {
    name: 'gpt2_decoder_with_past',
    node: nodes,
    initializer: inits,
    input: [
      io('input_ids', I64, ['batch_size', 'sequence_length']),
      io('attention_mask', I64, ['batch_size', 'total_length']),
      io('position_ids', I64, ['batch_size', 'sequence_length']),
      ...Array.from({ length: L }, (_, i) => ['key', 'value'].map((kv) => io(`past_key_values.${i}.${kv}`, F32, ['batch_size', H, 'past_length', hd]))).flat(),
    ],
    output: [
      io('logits', F32, ['batch_size', 'sequence_length', V]),
      ...Array.from({ length: L }, (_, i) => ['key', 'value'].map((kv) => io(`present.${i}.${kv}`, F32, ['batch_size', H, 'total_length', hd]))).flat(),
    ],
  };
  const model = onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: '@sp/bench', graph });
  const bytes = onnx.ModelProto.encode(model).finish();
  fs.mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  fs.writeFileSync(modelFile + '.tmp', bytes);
  fs.renameSync(modelFile + '.tmp', modelFile);
  const config = { architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', activation_function: 'gelu_new', n_layer: L, n_head: H, n_embd: d, n_positions: c.nCtx, n_ctx: c.nCtx, vocab_size: V, layer_norm_epsilon: c.layerNormEps, use_cache: true };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ _from_model_config: true }, null, 2) + '\n');
  log(`wrote ${preset} ONNX decoder (${(bytes.length / 1e6).toFixed(0)} MB, ${nodes.length} nodes) in ${((performance.now() - t0) / 1000).toFixed(1)} s → ${dir}`);
  return dir;
}
