/**
 * The ONNX graphs the onnxruntime engine (ort-engine.ts) runs: one dense layer each, built here and
 * serialised with protobufjs from the subset of onnx.proto they use (field numbers as in
 * onnx/onnx.proto). Weights are not in the bytes: they are "external data" in named in-memory
 * files handed to the session (sessionOptions.externalData), so a graph is a few hundred bytes.
 */
import { createRequire } from 'node:module';
import type * as Protobuf from 'protobufjs';

const require = createRequire(import.meta.url);

const FLOAT = 1; // TensorProto.DataType.FLOAT
const INT64 = 7; // TensorProto.DataType.INT64
const FLOAT_ATTR = 1; // AttributeProto.AttributeType.FLOAT
const INT = 2; // AttributeProto.AttributeType.INT
const INTS = 7; // AttributeProto.AttributeType.INTS
const EXTERNAL = 1; // TensorProto.DataLocation.EXTERNAL

/** onnx.proto, only the messages and fields these graphs set. */
const SCHEMA = {
  nested: {
    onnx: {
      nested: {
        ModelProto: { fields: { irVersion: { type: 'int64', id: 1 }, producerName: { type: 'string', id: 2 }, graph: { type: 'GraphProto', id: 7 }, opsetImport: { rule: 'repeated', type: 'OperatorSetIdProto', id: 8 } } },
        OperatorSetIdProto: { fields: { domain: { type: 'string', id: 1 }, version: { type: 'int64', id: 2 } } },
        GraphProto: {
          fields: {
            node: { rule: 'repeated', type: 'NodeProto', id: 1 },
            name: { type: 'string', id: 2 },
            initializer: { rule: 'repeated', type: 'TensorProto', id: 5 },
            input: { rule: 'repeated', type: 'ValueInfoProto', id: 11 },
            output: { rule: 'repeated', type: 'ValueInfoProto', id: 12 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: 'repeated', type: 'string', id: 1 },
            output: { rule: 'repeated', type: 'string', id: 2 },
            name: { type: 'string', id: 3 },
            opType: { type: 'string', id: 4 },
            domain: { type: 'string', id: 7 },
            attribute: { rule: 'repeated', type: 'AttributeProto', id: 5 },
          },
        },
        AttributeProto: { fields: { name: { type: 'string', id: 1 }, f: { type: 'float', id: 2 }, i: { type: 'int64', id: 3 }, ints: { rule: 'repeated', type: 'int64', id: 8 }, type: { type: 'int32', id: 20 } } },
        TensorProto: {
          fields: {
            dims: { rule: 'repeated', type: 'int64', id: 1 },
            dataType: { type: 'int32', id: 2 },
            int64Data: { rule: 'repeated', type: 'int64', id: 7 },
            name: { type: 'string', id: 8 },
            externalData: { rule: 'repeated', type: 'StringStringEntryProto', id: 13 },
            dataLocation: { type: 'int32', id: 14 },
          },
        },
        StringStringEntryProto: { fields: { key: { type: 'string', id: 1 }, value: { type: 'string', id: 2 } } },
        ValueInfoProto: { fields: { name: { type: 'string', id: 1 }, type: { type: 'TypeProto', id: 2 } } },
        TypeProto: { fields: { tensorType: { type: 'TypeProtoTensor', id: 1 } } },
        TypeProtoTensor: { fields: { elemType: { type: 'int32', id: 1 }, shape: { type: 'TensorShapeProto', id: 2 } } },
        TensorShapeProto: { fields: { dim: { rule: 'repeated', type: 'Dimension', id: 1 } } },
        Dimension: { oneofs: { value: { oneof: ['dimValue', 'dimParam'] } }, fields: { dimValue: { type: 'int64', id: 1 }, dimParam: { type: 'string', id: 2 } } },
      },
    },
  },
};

let modelType: Protobuf.Type | undefined;
function modelProto(): Protobuf.Type {
  // Loaded on first use: only this engine needs protobufjs.
  const pb = require('protobufjs/light.js') as typeof Protobuf;
  return (modelType ??= pb.Root.fromJSON(SCHEMA).lookupType('onnx.ModelProto'));
}

/** Serialised ModelProto of `graph` (opset 17, plus com.microsoft 1 when `contrib`). */
export function encodeModel(graph: object, contrib = false): Uint8Array {
  const type = modelProto();
  const opsetImport = [{ domain: '', version: 17 }, ...(contrib ? [{ domain: 'com.microsoft', version: 1 }] : [])];
  return type.encode(type.fromObject({ irVersion: 9, producerName: 'sp', opsetImport, graph })).finish();
}

export const valueInfo = (name: string, dims: (number | string)[], elemType = FLOAT) => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
});

/** A float32 initializer whose bytes are the whole in-memory file `file`. */
export const external = (name: string, dims: number[], file: string) => ({
  name,
  dims,
  dataType: FLOAT,
  dataLocation: EXTERNAL,
  externalData: [
    { key: 'location', value: file },
    { key: 'offset', value: '0' },
    { key: 'length', value: String(dims.reduce((a, b) => a * b, 1) * 4) },
  ],
});

/** An int64 initializer holding `values` (a shape for Reshape). */
const int64s = (name: string, values: number[]) => ({ name, dims: [values.length], dataType: INT64, int64Data: values });

/** In-memory file names the graphs' initializers refer to. */
export const W_FILE = 'W.bin';
export const B_FILE = 'b.bin';

/**
 * y [M, N] = x [M, K] @ W + b, M free. `stored`: 'in-out' = W given as [K, N] (HF Conv1D) and
 * multiplied by MatMul, with the bias-free product also an output ('xw', what `weight()` reads W
 * back through), and with `gelu` gelu_new(y) a third ('g', com.microsoft's FastGelu: the tanh form
 * GPT-2 uses; only on c_fc: onnxruntime runs every node of a graph whatever outputs a run asks
 * for, ~20 µs per 8 × 2304 for nothing on the other layers); 'out-in' = W given as [N, K] (the
 * tied unembedding), Gemm with transB. `wInput`: W is an input fed at every run (from memory the
 * caller keeps) instead of an initializer.
 */
export function linearGraph(K: number, N: number, stored: 'in-out' | 'out-in', bias: boolean, wInput = false, gelu = false): Uint8Array {
  const wDims = stored === 'in-out' ? [K, N] : [N, K];
  const inits = wInput ? [] : [external('W', wDims, W_FILE)];
  if (bias) inits.push(external('b', [N], B_FILE));
  const nodes: object[] =
    stored === 'out-in'
      ? [{ name: 'gemm', opType: 'Gemm', input: bias ? ['x', 'W', 'b'] : ['x', 'W'], output: ['y'], attribute: [{ name: 'transB', type: INT, i: 1 }] }]
      : bias
        ? [
            { name: 'matmul', opType: 'MatMul', input: ['x', 'W'], output: ['xw'] },
            { name: 'add', opType: 'Add', input: ['xw', 'b'], output: ['y'] },
          ]
        : [{ name: 'matmul', opType: 'MatMul', input: ['x', 'W'], output: ['y'] }];
  const outputs = [valueInfo('y', ['M', N])];
  if (stored === 'in-out' && bias) outputs.push(valueInfo('xw', ['M', N]));
  gelu &&= stored === 'in-out' && bias;
  if (gelu) {
    outputs.push(valueInfo('g', ['M', N]));
    nodes.push({ name: 'gelu', opType: 'FastGelu', domain: 'com.microsoft', input: ['y'], output: ['g'] });
  }
  const inputs = [valueInfo('x', ['M', K])];
  if (wInput) inputs.push(valueInfo('W', wDims));
  return encodeModel({ name: 'linear', node: nodes, initializer: inits, input: inputs, output: outputs }, gelu);
}

/**
 * c [..., M, N] = alpha · a [..., M, K] @ b (b [..., K, N], or [..., N, K] with `transB`), rank 4,
 * every dimension free: attention's QKᵀ and pattern·V. com.microsoft's FusedMatMul (onnxruntime's
 * CPU contrib op) takes the transpose and the scale inside the product.
 */
export function batchMatMulGraph(transB: boolean, alpha: number): Uint8Array {
  const dims = (p: string) => [p + '0', p + '1', p + '2', p + '3'];
  const node = {
    name: 'bmm',
    opType: 'FusedMatMul',
    domain: 'com.microsoft',
    input: ['a', 'b'],
    output: ['c'],
    attribute: [
      { name: 'transB', type: INT, i: transB ? 1 : 0 },
      { name: 'alpha', type: FLOAT_ATTR, f: alpha },
    ],
  };
  return encodeModel({ name: 'bmm', node: [node], initializer: [], input: [valueInfo('a', dims('a')), valueInfo('b', dims('b'))], output: [valueInfo('c', dims('c'))] }, true);
}

/**
 * Attention after the qkv product and the cache update, in one call (the forward pass uses it when
 * no hook wants q, k, v, the scores or the pattern): q = the heads of qkv [B, S, 3·H·Dh]'s first
 * third; k, v [B, H, C, Dh] are cache buffers whose first T positions are filled (copies.ts);
 * scores = alpha · q kᵀ over all C, cut to the first T (input `T`), plus bias [B or 1, 1, S, T]
 * when `masked`; pattern = softmax(scores), padded with zeros back to C (input `pads`: C − T
 * zeros on the last axis) so that z = pattern · v needs no copy of v; z as [B, S, H·Dh]. The
 * step-by-step path on this engine makes the same calls (batchMatMulGraph's FusedMatMul on the same
 * buffers, the Softmax of unaryGraph, the same cut and padding), so both give the same values bit
 * for bit (MLAS' sums over C zero-padded positions differ from sums over T in the last bit for some
 * T, so both use C). The cache is grown outside: onnxruntime's Concat copied [8, 12, 40, 64] at
 * ~4 GB/s, 7× slower than block copies on the heap, and the spare rows take later positions in place.
 */
export function attentionGraph(H: number, Dh: number, alpha: number, masked: boolean): Uint8Array {
  const D = H * Dh;
  const node = (name: string, opType: string, input: string[], output: string[], attribute: object[] = [], domain?: string) => ({ name, opType, input, output, attribute, ...(domain ? { domain } : {}) });
  const perm = { name: 'perm', type: INTS, ints: [0, 2, 1, 3] };
  const nodes = [
    node('split', 'Split', ['qkv'], ['q', 'k_', 'v_'], [{ name: 'axis', type: INT, i: 2 }]), // equal parts; only q is used
    node('q_r', 'Reshape', ['q', 'heads_shape'], ['q5']),
    node('q_t', 'Transpose', ['q5'], ['q4'], [perm]),
    node('qk', 'FusedMatMul', ['q4', 'k'], ['scoresC'], [{ name: 'transB', type: INT, i: 1 }, { name: 'alpha', type: FLOAT_ATTR, f: alpha }], 'com.microsoft'),
    node('cut', 'Slice', ['scoresC', 'zero', 'T', 'last_axis'], ['scores0']),
    ...(masked ? [node('mask', 'Add', ['scores0', 'bias'], ['scores'])] : []),
    node('softmax', 'Softmax', [masked ? 'scores' : 'scores0'], ['pattern'], [{ name: 'axis', type: INT, i: -1 }]),
    node('pad', 'Pad', ['pattern', 'pads'], ['patternC']),
    node('patv', 'FusedMatMul', ['patternC', 'v'], ['z4'], [{ name: 'transB', type: INT, i: 0 }, { name: 'alpha', type: FLOAT_ATTR, f: 1 }], 'com.microsoft'),
    node('z_t', 'Transpose', ['z4'], ['z5'], [perm]),
    node('z_r', 'Reshape', ['z5', 'model_shape'], ['z']),
  ];
  const cache = (n: string) => valueInfo(n, ['B', H, 'C', Dh]);
  const inputs = [valueInfo('qkv', ['B', 'S', 3 * D]), cache('k'), cache('v'), valueInfo('T', [1], INT64), valueInfo('pads', [8], INT64), ...(masked ? [valueInfo('bias', ['Bb', 1, 'S', 'T'])] : [])];
  const initializer = [int64s('heads_shape', [0, 0, H, Dh]), int64s('model_shape', [0, 0, D]), int64s('zero', [0]), int64s('last_axis', [3])];
  return encodeModel({ name: 'attention', node: nodes, initializer, input: inputs, output: [valueInfo('z', ['B', 'S', D])] }, true);
}

/** y = op(x) for one elementwise or last-axis op (Softmax, com.microsoft FastGelu), rank `rank`, every dimension free. */
export function unaryGraph(op: 'Softmax' | 'FastGelu', rank: number): Uint8Array {
  const dims = (p: string) => Array.from({ length: rank }, (_, i) => p + i);
  const node = op === 'Softmax'
    ? { name: 'op', opType: op, input: ['x'], output: ['y'], attribute: [{ name: 'axis', type: INT, i: -1 }] }
    : { name: 'op', opType: op, domain: 'com.microsoft', input: ['x'], output: ['y'] };
  return encodeModel({ name: op, node: [node], initializer: [], input: [valueInfo('x', dims('x'))], output: [valueInfo('y', dims('y'))] }, op === 'FastGelu');
}
