/**
 * Gradients of the tfjs kernels the GPT-2 forward pass runs, so tf.grad / tf.valueAndGrad work
 * through the model. tfjs-core's own gradient registrations (dist/register_all_gradients.js) ship
 * only as extension-less ESM files that Node cannot load, and its CommonJS bundle has none; these
 * are the same textbook formulas, written with public ops. sp's fused LayerNorm / gelu_new
 * kernels get theirs in kernels.ts, the packed matmul via tf.customGrad (gemm/packed-linear.ts).
 * A kernel not listed here fails in tfjs' backprop with "gradient function not found for X".
 */
import * as tf from '@tensorflow/tfjs-core';

type Grads = Record<string, () => tf.Tensor>;

/** Sum a broadcast gradient back to `shape` (the input's shape before broadcasting). */
export function reduceTo(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, dy.shape);
  const r = axes.length ? tf.sum(dy, axes) : dy;
  return tf.reshape(r, shape);
}

function binary(kernelName: string, fa: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor, fb: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [a, b] = saved;
      const d = dy as tf.Tensor;
      return { a: () => reduceTo(fa(d, a, b), a.shape), b: () => reduceTo(fb(d, a, b), b.shape) };
    },
  };
}

/** Axes of a reduction attr (number | number[], negative allowed) as non-negative numbers. */
function axesOf(axis: unknown, rank: number): number[] {
  const list = Array.isArray(axis) ? (axis as number[]) : axis == null ? [...Array(rank).keys()] : [axis as number];
  return list.map((a) => (a < 0 ? a + rank : a));
}

/** dy of a reduction over `axes` broadcast back to the input's shape. */
function unreduce(dy: tf.Tensor, shape: number[], axes: number[]): tf.Tensor {
  const kept = shape.map((n, i) => (axes.includes(i) ? 1 : n));
  return tf.mul(tf.reshape(dy, kept), tf.ones(shape));
}

const CONFIGS: tf.GradConfig[] = [
  binary('Add', (dy) => dy, (dy) => dy),
  binary('Sub', (dy) => dy, (dy) => tf.neg(dy)),
  binary('Multiply', (dy, _a, b) => tf.mul(dy, b), (dy, a) => tf.mul(dy, a)),
  binary('RealDiv', (dy, _a, b) => tf.div(dy, b), (dy, a, b) => tf.neg(tf.div(tf.mul(dy, a), tf.square(b)))),
  binary('SquaredDifference', (dy, a, b) => tf.mul(dy, tf.mul(2, tf.sub(a, b))), (dy, a, b) => tf.mul(dy, tf.mul(-2, tf.sub(a, b)))),
  {
    kernelName: 'Pow',
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved) => {
      const [a, b, y] = saved;
      const d = dy as tf.Tensor;
      return {
        a: () => reduceTo(tf.mul(d, tf.mul(b, tf.pow(a, tf.sub(b, 1)))), a.shape),
        b: () => reduceTo(tf.mul(d, tf.mul(y, tf.log(tf.where(tf.greater(a, 0), a, tf.onesLike(a))))), b.shape),
      };
    },
  },
  { kernelName: 'Neg', gradFunc: (dy) => ({ x: () => tf.neg(dy as tf.Tensor) }) },
  { kernelName: 'Identity', gradFunc: (dy) => ({ x: () => tf.clone(dy as tf.Tensor) }) },
  {
    kernelName: 'Cast',
    inputsToSave: ['x'],
    gradFunc: (dy, [x]) => ({ x: () => (x.dtype === 'float32' ? tf.clone(dy as tf.Tensor) : tf.zerosLike(x)) }),
  },
  { kernelName: 'Square', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.mul(2, x)) }) },
  { kernelName: 'Sqrt', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as tf.Tensor, tf.mul(2, tf.sqrt(x))) }) },
  // d/dx x^(-1/2) = -1/2 · x^(-3/2)
  { kernelName: 'Rsqrt', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.mul(-0.5, tf.div(tf.rsqrt(x), x))) }) },
  { kernelName: 'Exp', outputsToSave: [true], gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as tf.Tensor, y) }) },
  { kernelName: 'Log', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.div(dy as tf.Tensor, x) }) },
  { kernelName: 'Tanh', outputsToSave: [true], gradFunc: (dy, [y]) => ({ x: () => tf.mul(dy as tf.Tensor, tf.sub(1, tf.square(y))) }) },
  { kernelName: 'Reshape', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy as tf.Tensor, x.shape) }) },
  {
    kernelName: 'Transpose',
    gradFunc: (dy, _s, attrs) => {
      const perm = (attrs as { perm: number[] }).perm;
      const inv = new Array<number>(perm.length);
      perm.forEach((p, i) => (inv[p] = i));
      return { x: () => tf.transpose(dy as tf.Tensor, inv) };
    },
  },
  {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b], attrs) => {
      const { transposeA: tA, transposeB: tB } = attrs as { transposeA: boolean; transposeB: boolean };
      const d = dy as tf.Tensor;
      // y = op(a) · op(b): the four cases of dA, dB (as in tfjs-core's BatchMatMul_grad).
      const da = !tA && !tB ? tf.matMul(d, b, false, true) : !tA && tB ? tf.matMul(d, b) : tA && !tB ? tf.matMul(b, d, false, true) : tf.matMul(b, d, true, true);
      const db = !tA && !tB ? tf.matMul(a, d, true, false) : !tA && tB ? tf.matMul(d, a, true, false) : tA && !tB ? tf.matMul(a, d) : tf.matMul(d, a, true, true);
      return { a: () => reduceTo(da, a.shape), b: () => reduceTo(db, b.shape) };
    },
  },
  {
    kernelName: 'Softmax',
    outputsToSave: [true],
    gradFunc: (dy, [y], attrs) => {
      const dim = (attrs as { dim: number }).dim;
      const d = dy as tf.Tensor;
      return { logits: () => tf.mul(y, tf.sub(d, tf.sum(tf.mul(d, y), dim, true))) };
    },
  },
  {
    kernelName: 'Sum',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => ({ x: () => unreduce(dy as tf.Tensor, x.shape, axesOf((attrs as { axis: unknown }).axis, x.rank)) }),
  },
  {
    kernelName: 'Mean',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const axes = axesOf((attrs as { axis: unknown }).axis, x.rank);
      const n = axes.reduce((p, a) => p * x.shape[a], 1);
      return { x: () => tf.div(unreduce(dy as tf.Tensor, x.shape, axes), n) };
    },
  },
  {
    kernelName: 'SplitV',
    gradFunc: (dy, _s, attrs) => ({ x: () => tf.concat(dy as tf.Tensor[], (attrs as { axis: number }).axis) }),
  },
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = axesOf((attrs as { axis: number }).axis, saved[0].rank)[0];
      const parts = tf.split(dy as tf.Tensor, saved.map((t) => t.shape[axis]), axis);
      const out: Grads = {};
      parts.forEach((p, i) => (out[i] = () => p));
      return out;
    },
  },
  {
    kernelName: 'Pack',
    gradFunc: (dy, _s, attrs) => {
      const parts = tf.unstack(dy as tf.Tensor, (attrs as { axis: number }).axis);
      const out: Grads = {};
      parts.forEach((p, i) => (out[i] = () => p));
      return out;
    },
  },
  {
    kernelName: 'Slice',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => {
      const a = attrs as { begin: number | number[]; size?: number | number[] };
      const [begin] = tf.slice_util.parseSliceParams(x, a.begin, a.size);
      const d = dy as tf.Tensor;
      const pads = x.shape.map((n, i) => [begin[i], n - begin[i] - d.shape[i]] as [number, number]);
      return { x: () => tf.pad(d, pads) };
    },
  },
  {
    kernelName: 'Select',
    inputsToSave: ['condition'],
    gradFunc: (dy, [cond]) => {
      const d = dy as tf.Tensor;
      return {
        condition: () => tf.zeros(cond.shape),
        t: () => tf.mul(d, tf.cast(cond, d.dtype)),
        e: () => tf.mul(d, tf.cast(tf.logicalNot(cond), d.dtype)),
      };
    },
  },
  {
    kernelName: 'GatherV2',
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy, [x, indices], attrs) => {
      const axis = axesOf((attrs as { axis: number }).axis, x.rank)[0];
      if (axis !== 0 || indices.rank !== 1) throw new Error('sp: gradient of gather only along axis 0 with 1-D indices');
      return {
        x: () => tf.unsortedSegmentSum(dy as tf.Tensor, indices as tf.Tensor1D, x.shape[0]),
        indices: () => tf.zeros(indices.shape),
      };
    },
  },
  { kernelName: 'ExpandDims', inputsToSave: ['input'], gradFunc: (dy, [x]) => ({ input: () => tf.reshape(dy as tf.Tensor, x.shape) }) },
  { kernelName: 'Squeeze', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy as tf.Tensor, x.shape) }) },
  { kernelName: 'Tile', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => reduceTiled(dy as tf.Tensor, x.shape) }) },
  { kernelName: 'BroadcastTo', inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => reduceTo(dy as tf.Tensor, x.shape) }) },
  { kernelName: 'ZerosLike', gradFunc: (dy) => ({ x: () => tf.zerosLike(dy as tf.Tensor) }) },
  { kernelName: 'OnesLike', gradFunc: (dy) => ({ x: () => tf.zerosLike(dy as tf.Tensor) }) },
];

/** Gradient of tile: sum the copies (each axis tiled n/xn times) back onto x. */
function reduceTiled(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const split: number[] = [];
  shape.forEach((n, i) => split.push(dy.shape[i] / n, n));
  const axes = shape.map((_, i) => 2 * i);
  return tf.reshape(tf.sum(tf.reshape(dy, split), axes), shape);
}

let registered = false;
/** Register every gradient above, unless one is already registered (e.g. by tfjs itself). */
export function registerGradients(): void {
  if (registered) return;
  registered = true;
  for (const c of CONFIGS) if (!tf.getGradient(c.kernelName)) tf.registerGradient(c);
}
