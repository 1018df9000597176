/**
 * The `webgpu` backend: tfjs-backend-webgpu on a GPU reached through Dawn's Node binding (the
 * `webgpu` npm package: Vulkan on Linux, Metal on macOS, D3D12 on Windows). Both packages are
 * optional and the backend is only used when asked for (`backend: 'webgpu'`, SP_BACKEND=webgpu);
 * sp's matrices stay tfjs tensors there (the tfjs engine).
 *
 * In Node a GPU buffer can only be read back asynchronously: tfjs' synchronous read draws through an
 * OffscreenCanvas, which Node lacks. sp's own reads of computed tensors on the paths that matter
 * (generate, the logit lens) await `tensor.data()` on this backend (`syncReads`), and any other
 * synchronous read of a computed tensor is a one-line SpError instead of a ReferenceError. tfjs
 * drops a tensor's host values once it is on the GPU, so what sp reads of the parameters (the
 * weight norms) is taken at load, and FF keys and values are read from the file as everywhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SpError } from '../errors.js';

/** The adapter the webgpu backend runs on, as Dawn describes it (undefined before it starts). */
export interface WebgpuAdapter {
  vendor: string;
  architecture: string;
  description: string;
}
let adapter: WebgpuAdapter | undefined;

interface Dawn {
  create(flags: string[]): unknown;
  globals: Record<string, unknown>;
}
interface GpuLike {
  requestAdapter(o?: object): Promise<{ info?: Partial<WebgpuAdapter> } | null>;
}

export async function startWebgpu(): Promise<void> {
  const missing = new SpError('UNSUPPORTED', 'backend "webgpu" needs the packages webgpu and @tensorflow/tfjs-backend-webgpu installed');
  let dawn: Dawn;
  try {
    dawn = (await import('webgpu')) as unknown as Dawn;
  } catch {
    throw missing;
  }
  const g = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in g)) g[k] = v; // GPUBufferUsage, GPUMapMode, ...
  // Node ≥ 21 has a navigator without `gpu`; Node 20 has none.
  if (g.navigator === undefined) Object.defineProperty(g, 'navigator', { value: {}, configurable: true, writable: true });
  const nav = g.navigator as { gpu?: GpuLike };
  if (!nav.gpu) Object.defineProperty(nav, 'gpu', { value: dawn.create([]), configurable: true });
  try {
    await import('@tensorflow/tfjs-backend-webgpu'); // registers 'webgpu' only where navigator.gpu exists
  } catch {
    throw missing;
  }
  const found = await nav.gpu!.requestAdapter({ powerPreference: 'high-performance' });
  if (!found) throw new SpError('UNSUPPORTED', 'backend "webgpu": no WebGPU adapter found (on Linux Dawn needs a Vulkan driver)');
  adapter = { vendor: found.info?.vendor ?? '', architecture: found.info?.architecture ?? '', description: found.info?.description ?? '' };
  if (!(await tf.setBackend('webgpu'))) throw new SpError('UNSUPPORTED', 'backend "webgpu" failed to initialise');
  await tf.ready();
  guard();
}

export function webgpuAdapter(): WebgpuAdapter | undefined {
  return adapter;
}

/** Most float32 elements one GPU buffer may hold on the active backend (Infinity off webgpu). */
export function bufferElements(): number {
  if (tf.getBackend() !== 'webgpu') return Infinity;
  return Math.floor((tf.backend() as unknown as { device: { limits: { maxStorageBufferBindingSize: number } } }).device.limits.maxStorageBufferBindingSize / 4);
}

/** Whether the active backend reads computed tensors synchronously (every backend but webgpu in Node). */
export function syncReads(): boolean {
  return tf.getBackend() !== 'webgpu' || typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas !== 'undefined';
}

/** Reads a computed tensor on any backend, then surfaces a GPU error recorded meanwhile. */
export async function readAsync(t: tf.Tensor): Promise<Float32Array> {
  const v = (await t.data()) as Float32Array;
  if (gpuError !== undefined) {
    const msg = gpuError;
    gpuError = undefined;
    throw new SpError('UNSUPPORTED', `webgpu: ${msg}`);
  }
  return v;
}
let gpuError: string | undefined;

/**
 * A WebGPU validation error does not throw: the command is dropped and the results are garbage. So
 * sp refuses what would fail (a buffer over the device's binding limit, e.g. GPT-2's [V, d]
 * embedding on a software Vulkan), keeps the first uncaptured error for the next read, and turns a
 * synchronous read of a computed tensor into a one-line SpError.
 */
const guarded = new WeakSet<object>();
function guard(): void {
  if (guarded.has(tf.backend())) return; // started again (initBackend switching back): wrapped already
  guarded.add(tf.backend());
  const backend = tf.backend() as unknown as {
    readSync(dataId: object): unknown;
    uploadToGPU(dataId: object): void;
    tensorMap: { get(dataId: object): { values?: unknown; dtype?: string; shape?: number[] } | undefined };
    hasReadSyncWarned?: boolean;
    device: { limits: { maxStorageBufferBindingSize: number }; addEventListener?(type: string, fn: (e: { error?: { message?: string } }) => void): void };
  };
  const limit = backend.device.limits.maxStorageBufferBindingSize;
  const upload = backend.uploadToGPU.bind(backend);
  backend.uploadToGPU = (dataId: object) => {
    const d = backend.tensorMap.get(dataId);
    const bytes = 4 * (d?.shape ?? []).reduce((a, b) => a * b, 1); // tfjs webgpu stores every dtype in 4-byte words
    if (bytes > limit) {
      const mib = (n: number) => (n / 2 ** 20).toFixed(0);
      throw new SpError('UNSUPPORTED', `webgpu: a [${d!.shape!.join(', ')}] tensor needs ${mib(bytes)} MiB in one buffer; this device binds at most ${mib(limit)} MiB (use smaller inputs or batches, or another backend)`);
    }
    upload(dataId);
  };
  backend.device.addEventListener?.('uncapturederror', (e) => {
    gpuError ??= (e.error?.message ?? 'GPU error').split('\n')[0];
  });
  if (syncReads()) return;
  const readSync = backend.readSync.bind(backend);
  backend.hasReadSyncWarned = true; // its warning is about speed; here the read cannot happen at all
  backend.readSync = (dataId: object) => {
    const d = backend.tensorMap.get(dataId);
    if (d && d.values == null && d.dtype !== 'string' && d.dtype !== 'complex64') {
      throw new SpError('UNSUPPORTED', 'the webgpu backend cannot read a GPU tensor synchronously in Node (dataSync/arraySync): use await tensor.data() or tensor.array()');
    }
    return readSync(dataId);
  };
}
