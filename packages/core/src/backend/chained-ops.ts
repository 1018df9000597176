/**
 * Chained tensor methods (`t.mul(0)`, `t.argMax(-1)`, `t.slice(...)`) so hooks read like
 * TransformerLens / PyTorch code. tfjs-core registers them only from ESM files Node cannot load
 * (extension-less imports), so we attach the same methods here, delegating to the tf ops.
 */
import * as tf from '@tensorflow/tfjs-core';
// Type-only: brings tfjs' own declarations of the chained methods onto tf.Tensor.
import type {} from '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';

// `this` is passed as the first argument: t.op(...args) === tf.op(t, ...args).
const DELEGATED = [
  'abs', 'acos', 'acosh', 'add', 'all', 'any', 'argMax', 'argMin', 'asin', 'asinh', 'atan', 'atan2', 'atanh', 'avgPool',
  'broadcastTo', 'cast', 'ceil', 'clipByValue', 'conv1d', 'conv2d', 'conv2dTranspose', 'cos', 'cosh', 'cumprod', 'cumsum',
  'depthToSpace', 'depthwiseConv2d', 'dilation2d', 'div', 'divNoNan', 'dot', 'elu', 'equal', 'erf', 'euclideanNorm', 'exp',
  'expandDims', 'expm1', 'fft', 'floor', 'floorDiv', 'gather', 'greater', 'greaterEqual', 'ifft', 'irfft', 'isFinite', 'isInf',
  'leakyRelu', 'less', 'lessEqual', 'localResponseNormalization', 'log', 'log1p', 'logSigmoid', 'logSoftmax', 'logSumExp',
  'logicalAnd', 'logicalNot', 'logicalOr', 'logicalXor', 'matMul', 'max', 'maxPool', 'maximum', 'mean', 'min', 'minimum',
  'mirrorPad', 'mod', 'mul', 'neg', 'norm', 'notEqual', 'oneHot', 'onesLike', 'pad', 'pool', 'pow', 'prelu', 'prod',
  'reciprocal', 'relu', 'relu6', 'reshape', 'reverse', 'rfft', 'round', 'rsqrt', 'selu', 'separableConv2d', 'sigmoid', 'sign',
  'sin', 'sinh', 'slice', 'softmax', 'softplus', 'split', 'sqrt', 'square', 'squaredDifference', 'squeeze', 'step',
  'stridedSlice', 'sub', 'sum', 'tan', 'tanh', 'tile', 'topk', 'transpose', 'unique', 'unsortedSegmentSum', 'unstack', 'zerosLike',
] as const;

type AnyFn = (...args: unknown[]) => unknown;
const ops = tf as unknown as Record<string, AnyFn>;

export function registerChainedOps(): void {
  const proto = tf.Tensor.prototype as unknown as Record<string, AnyFn>;
  if (proto.__spChained) return;
  const define = (name: string, fn: (self: tf.Tensor, ...a: unknown[]) => unknown) => {
    if (typeof proto[name] === 'function') return; // tfjs (or another loader) already did
    proto[name] = function (this: tf.Tensor, ...a: unknown[]) {
      this.throwIfDisposed();
      return fn(this, ...a);
    };
  };
  for (const name of DELEGATED) define(name, (self, ...a) => ops[name](self, ...a));
  // Methods whose argument order or name differs from the op.
  define('concat', (self, x, axis) => tf.concat([self, ...(Array.isArray(x) ? x : [x])] as tf.Tensor[], axis as number));
  define('stack', (self, x, axis) => tf.stack([self, ...(Array.isArray(x) ? x : [x])] as tf.Tensor[], axis as number));
  define('where', (self, cond, b) => tf.where(cond as tf.Tensor, self, b as tf.Tensor));
  define('asType', (self, dtype) => tf.cast(self, dtype as tf.DataType));
  define('toFloat', (self) => tf.cast(self, 'float32'));
  define('toInt', (self) => tf.cast(self, 'int32'));
  define('toBool', (self) => tf.cast(self, 'bool'));
  define('flatten', (self) => tf.reshape(self, [self.size]));
  define('asScalar', (self) => tf.reshape(self, []));
  define('as1D', (self) => tf.reshape(self, [-1]));
  define('reshapeAs', (self, x) => tf.reshape(self, (x as tf.Tensor).shape));
  define('isNaN', (self) => tf.isNaN(self));
  Object.defineProperty(proto, '__spChained', { value: true });
}
