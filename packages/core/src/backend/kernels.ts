/**
 * Two fused kernels the forward pass calls dozens of times per token: LayerNorm and gelu_new.
 *
 * Composed from tfjs ops they cost 9 and 8 kernel launches (plus scalar uploads); on the wasm
 * backend that is ~0.25 ms and ~1 ms per call at one position (tf.pow alone is slow), i.e. more
 * than 15 ms of a ~25 ms decode step for GPT-2 small. Here each is one kernel running a plain loop
 * over the backend's own memory (the wasm heap, or the cpu backend's arrays): ~10-100 µs.
 * Statistics are accumulated in float64, so results agree with the composite ops to float32
 * rounding. Other backends (tfjs-node) use the composite ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WasmHeap } from './heap.js';

const LN = 'SpLayerNorm';
const GELU = 'SpGeluNew';

type Info = tf.TensorInfo;
interface CpuLike {
  data: { get(id: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): Info;
}

/** Run `fn(inputs arrays, out)` on the backend's memory without copies. */
function elementwiseKernel(backendName: 'wasm' | 'cpu', compute: (ins: Float32Array[], out: Float32Array, attrs: Record<string, unknown>, shape: number[]) => void) {
  return ({ inputs, backend, attrs }: { inputs: Record<string, Info>; backend: unknown; attrs?: Record<string, unknown> }) => {
    const list = Object.values(inputs);
    const x = list[0];
    if (list.some((t) => t.dtype !== 'float32')) throw new Error('float32 inputs expected');
    if (backendName === 'wasm') {
      const b = backend as WasmHeap;
      const out = b.makeOutput(x.shape, 'float32'); // allocate first: growing the heap may move it
      compute(list.map((t) => b.typedArrayFromHeap(t)), b.typedArrayFromHeap(out), attrs ?? {}, x.shape);
      return out;
    }
    const b = backend as CpuLike;
    const outVals = new Float32Array(x.shape.reduce((a, c) => a * c, 1));
    compute(list.map((t) => b.data.get(t.dataId).values), outVals, attrs ?? {}, x.shape);
    return b.makeTensorInfo(x.shape, 'float32', outVals);
  };
}

/** y = (x − mean) / sqrt(var + eps) · w + b over the last axis. */
function layerNormLoop([x, w, b]: Float32Array[], out: Float32Array, attrs: Record<string, unknown>, shape: number[]): void {
  const d = shape[shape.length - 1];
  const eps = attrs.eps as number;
  for (let o = 0; o < x.length; o += d) {
    let s = 0;
    for (let i = 0; i < d; i++) s += x[o + i];
    const mean = s / d;
    let v = 0;
    for (let i = 0; i < d; i++) {
      const c = x[o + i] - mean;
      v += c * c;
    }
    const r = 1 / Math.sqrt(v / d + eps);
    for (let i = 0; i < d; i++) out[o + i] = (x[o + i] - mean) * r * w[i] + b[i];
  }
}

/**
 * gelu_new(x) = 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), with tanh from Eigen's float32
 * rational approximation (|error| ≤ 2.6e-7 on all inputs, i.e. float32 rounding level): about 2×
 * faster than Math.exp/Math.tanh in V8, and gelu runs on d_mlp values per position per layer.
 */
function geluLoop([x]: Float32Array[], out: Float32Array): void {
  const c = Math.sqrt(2 / Math.PI);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    out[i] = 0.5 * v * (1 + tanhF32(c * (v + 0.044715 * v * v * v)));
  }
}

// Eigen's generic_fast_tanh_float: odd polynomial / even polynomial on (-7.9, 7.9), ±1 beyond.
const T_CLAMP = 7.90531110763549805;
const A1 = 4.89352455891786e-3, A3 = 6.37261928875436e-4, A5 = 1.48572235717979e-5, A7 = 5.12229709037114e-8;
const A9 = -8.60467152213735e-11, A11 = 2.00018790482477e-13, A13 = -2.76076847742355e-16;
const B0 = 4.89352518554385e-3, B2 = 2.26843463243900e-3, B4 = 1.18534705686654e-4, B6 = 1.19825839466702e-6;

export function tanhF32(x: number): number {
  if (x >= T_CLAMP) return 1; // tanh(7.9) = 1 − 2.7e-7: ±1 is as close, and exact for large |x|
  if (x <= -T_CLAMP) return -1;
  const x2 = x * x;
  const p = x * (A1 + x2 * (A3 + x2 * (A5 + x2 * (A7 + x2 * (A9 + x2 * (A11 + x2 * A13))))));
  return p / (B0 + x2 * (B2 + x2 * (B4 + x2 * B6)));
}

/**
 * Gradients of the two fused kernels (tf.grad through the model), in composite tfjs ops:
 * LayerNorm: x̂ = (x − μ)·r, r = 1/√(var + eps), g = dy·w: dx = r·(g − mean(g) − x̂·mean(g·x̂)),
 * dw = Σ dy·x̂, db = Σ dy (over all leading axes).
 * gelu_new: with u = c(x + 0.044715x³), t = tanh(u): d/dx = ½(1 + t) + ½x(1 − t²)·c(1 + 3·0.044715x²).
 */
const LN_GRAD: tf.GradConfig = {
  kernelName: LN,
  inputsToSave: ['x', 'w', 'b'],
  gradFunc: (dy, [x, w, b], attrs) => {
    const d = dy as tf.Tensor;
    const eps = (attrs as { eps: number }).eps;
    const xc = tf.sub(x, tf.mean(x, -1, true));
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), eps));
    const xhat = tf.mul(xc, r);
    const lead = [...Array(x.rank - 1).keys()];
    return {
      x: () => {
        const g = tf.mul(d, w);
        return tf.mul(r, tf.sub(tf.sub(g, tf.mean(g, -1, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
      },
      w: () => tf.reshape(tf.sum(tf.mul(d, xhat), lead), w.shape),
      b: () => tf.reshape(tf.sum(d, lead), b.shape),
    };
  },
};

const GELU_GRAD: tf.GradConfig = {
  kernelName: GELU,
  inputsToSave: ['x'],
  gradFunc: (dy, [x]) => ({
    x: () => {
      const c = Math.sqrt(2 / Math.PI);
      const x2 = tf.square(x);
      const t = tf.tanh(tf.mul(c, tf.mul(x, tf.add(1, tf.mul(0.044715, x2)))));
      const slope = tf.add(tf.mul(0.5, tf.add(1, t)), tf.mul(tf.mul(0.5 * c, x), tf.mul(tf.sub(1, tf.square(t)), tf.add(1, tf.mul(3 * 0.044715, x2)))));
      return tf.mul(dy as tf.Tensor, slope);
    },
  }),
};

let registered = false;
function register(): void {
  if (registered) return;
  registered = true;
  for (const be of ['wasm', 'cpu'] as const) {
    tf.registerKernel({ kernelName: LN, backendName: be, kernelFunc: elementwiseKernel(be, layerNormLoop) as unknown as tf.KernelFunc });
    tf.registerKernel({ kernelName: GELU, backendName: be, kernelFunc: elementwiseKernel(be, geluLoop) as unknown as tf.KernelFunc });
  }
  tf.registerGradient(LN_GRAD);
  tf.registerGradient(GELU_GRAD);
}

function fused(name: string): boolean {
  register();
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** LayerNorm over the last axis (x [..., d], w and b [d]). */
export function layerNorm(x: tf.Tensor, w: tf.Tensor1D, b: tf.Tensor1D, eps: number): tf.Tensor {
  if (fused(LN) && x.dtype === 'float32') {
    return tf.engine().runKernel(LN, { x, w, b } as unknown as tf.NamedTensorMap, { eps } as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, eps))), w), b);
}

/** gelu_new (tanh approximation), as in GPT-2 and HF's `gelu_new`. */
export function geluNew(x: tf.Tensor): tf.Tensor {
  if (fused(GELU) && x.dtype === 'float32') return tf.engine().runKernel(GELU, { x } as unknown as tf.NamedTensorMap) as tf.Tensor;
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}
