/**
 * The onnxruntime engine's threads: each block Linear's W is cut into column slices, one per
 * thread; the calling thread runs slice 0 and worker threads the others, every slice a one-thread
 * session.
 *
 * Why not onnxruntime's own intra-op pool: every layer is its own session (a decode step makes 49
 * calls), so each call wakes that session's sleeping pool thread, and a spinning pool per session
 * (49 of them) starves the machine. These workers spin briefly between jobs on a shared control
 * block (then sleep), as one pool for every layer. Measured on 2 cores, GPT-2 small's 48 block
 * layers: 17.9 → 16.4 ms per decode step at 1 row, 23.8 → 21.5 ms at 8 rows. A worker costs
 * 10–18 MB of its own, so models with few block weights do without (ort-engine.ts, POOL_MIN_BYTES).
 *
 * onnxruntime-node reads tensors only from plain (not shared) ArrayBuffers, so x and each slice's
 * y cross threads through SharedArrayBuffer regions with one copy each (small next to the product:
 * rows · (in + out) floats); long inputs go in row chunks that fit the regions. A slice's weights
 * reach a worker through the same x region, in chunks, into a resizable buffer the worker shrinks to
 * nothing once onnxruntime has copied it (an idle worker never collects garbage).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { SpError } from '../errors.js';
import { workerSource } from '../platform.js';

/** Floats of x one chunk may hold (shared by all workers) and of one worker's slice of y. */
const X_CAP = 1 << 18;
const Y_CAP = 1 << 19;
/** A worker's control block (Int32): job sequence number, done number, op, id, rows, output, status, message length, park. */
const SEQ = 0, DONE = 1, OP = 2, ID = 3, ROWS = 4, OUT = 5, STATUS = 6, MSG_LEN = 7, PARK = 8, READY = 9, CTRL_INTS = 10;
const OP_RUN = 1, OP_LOAD_BEGIN = 2, OP_DISPOSE = 3, OP_LOAD_CHUNK = 4, OP_LOAD_END = 5;
const MSG_BYTES = 1024;
/** A linear graph's outputs (onnx-graph.ts): x @ W + b, the bias-free x @ W, gelu_new(x @ W + b); a run asks for one by its number here (the worker gets this list). */
const OUTPUTS = ['y', 'xw', 'g'] as const;
export type LinearOutput = (typeof OUTPUTS)[number];
/** How long a waiting side spins before it sleeps: about the gap between two layers of a decode step. */
const SPIN_MS = 2;
/** A worker that has not answered in this long is reported (a stuck native call), not waited on forever. */
const TIMEOUT_MS = 600_000;
/** A worker that has not started in this long is reported (its error event cannot arrive while this thread waits). */
const START_MS = 30_000;


/**
 * The worker: one-thread sessions for its slices, run on request. Self-contained (it is eval'd);
 * the op and field numbers are the constants above.
 */
function workerMain(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { workerData, receiveMessageOnPort } = require('node:worker_threads') as typeof import('node:worker_threads');
  const { bindingPath, ctrlSab, xSab, ySab, msgSab, port, spinMs, xCap, yCap, outputs } = workerData as {
    bindingPath: string; outputs: readonly string[]; ctrlSab: SharedArrayBuffer; xSab: SharedArrayBuffer; ySab: SharedArrayBuffer; msgSab: SharedArrayBuffer;
    port: import('node:worker_threads').MessagePort; spinMs: number; xCap: number; yCap: number;
  };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const b = require(bindingPath);
  b.initOrt();
  Atomics.store(new Int32Array(ctrlSab), 9, 1); // ready
  type Resizable = ArrayBuffer & { resize(n: number): void };
  const ctrl = new Int32Array(ctrlSab);
  const xShared = new Float32Array(xSab), yShared = new Float32Array(ySab);
  const msg = new Uint8Array(msgSab);
  const xs = new Float32Array(xCap), ys = new Float32Array(yCap); // the binding reads plain buffers only
  const sessions = new Map<number, { s: { run: Function; dispose: Function; loadModel: Function }; K: number; N: number }>();
  const t = (dims: number[], data: Float32Array) => ({ type: 'float32', dims, data, location: 'cpu' });
  let loading: { graph: Uint8Array; files: { path: string; floats: number }[]; options: object; K: number; N: number } | undefined;
  let pending: Resizable | undefined;
  let seen = 0;
  for (;;) {
    // Spin for a moment (the next layer's job usually comes within it), then sleep until notified.
    const t0 = performance.now();
    let spins = 0;
    while (Atomics.load(ctrl, 0) === seen) {
      // Parked (ctrl[8]): a product on onnxruntime's own threads is about to run; free the core now.
      if (Atomics.load(ctrl, 8) === 1 || ((++spins & 255) === 0 && performance.now() - t0 > spinMs)) Atomics.wait(ctrl, 0, seen);
    }
    seen = Atomics.load(ctrl, 0);
    try {
      const op = ctrl[2], id = ctrl[3];
      if (op === 1) {
        const { s, K, N } = sessions.get(id)!;
        const M = ctrl[4];
        xs.set(xShared.subarray(0, M * K));
        const out = outputs[ctrl[5]];
        s.run({ x: t([M, K], xs.subarray(0, M * K)) }, { [out]: t([M, N], ys.subarray(0, M * N)) }, {});
        yShared.set(ys.subarray(0, M * N));
      } else if (op === 2) {
        loading = receiveMessageOnPort(port)!.message as typeof loading;
        const floats = loading!.files.reduce((a, f) => a + f.floats, 0);
        pending = new (ArrayBuffer as unknown as new (n: number, o: object) => Resizable)(floats * 4, { maxByteLength: floats * 4 });
      } else if (op === 4) {
        new Float32Array(pending!, ctrl[5] * 4, ctrl[4]).set(xShared.subarray(0, ctrl[4]));
      } else if (op === 5) {
        const m = loading!;
        let at = 0;
        const files = m.files.map((f) => {
          const data = new Uint8Array(pending!, at * 4, f.floats * 4);
          at += f.floats;
          return { path: f.path, data };
        });
        try {
          const s = new b.binding.InferenceSession();
          s.loadModel(m.graph.buffer, m.graph.byteOffset, m.graph.byteLength, { ...m.options, externalData: files });
          sessions.set(id, { s, K: m.K, N: m.N });
        } finally {
          pending!.resize(0);
          pending = loading = undefined;
        }
      } else if (op === 3) {
        sessions.get(id)?.s.dispose();
        sessions.delete(id);
      }
      ctrl[6] = 0;
    } catch (e) {
      const text = new TextEncoder().encode(String((e as Error)?.message ?? e).split('\n')[0]).subarray(0, msg.length);
      msg.set(text);
      ctrl[7] = text.length;
      ctrl[6] = 1;
    }
    Atomics.store(ctrl, 1, seen);
    Atomics.notify(ctrl, 1);
  }
}

interface PoolWorker {
  worker: Worker;
  port: MessagePort;
  ctrl: Int32Array;
  y: Float32Array;
  msg: Uint8Array;
  seq: number;
  /** Set when the worker failed to start or died: every later use is this error. */
  dead?: string;
}

export interface SliceSpec {
  /** Serialised graph of the slice: input x [M, K], outputs y (and xw) [M, n]. */
  graph: Uint8Array;
  /** In-memory external data of its initializers (W slice, b slice): sent to the worker, copied by onnxruntime at load. */
  files: { path: string; data: Float32Array }[];
}

let nextId = 1;

/** Worker threads that run column slices of products. One per process, grown on demand. */
export class OrtPool {
  private readonly workers: PoolWorker[] = [];
  private readonly x = new Float32Array(new SharedArrayBuffer(X_CAP * 4));
  /** Slice 0's output for chunks of several rows (this thread's, so a plain buffer). */
  private scratch: Float32Array | undefined;

  constructor(private readonly bindingPath: string) {}

  /** At least `n` workers (unreferenced: they never keep the process alive). */
  grow(n: number): void {
    while (this.workers.length < n) {
      const ctrlSab = new SharedArrayBuffer(CTRL_INTS * 4);
      const ySab = new SharedArrayBuffer(Y_CAP * 4);
      const msgSab = new SharedArrayBuffer(MSG_BYTES);
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(workerSource(workerMain), {
        eval: true,
        workerData: { bindingPath: this.bindingPath, ctrlSab, xSab: this.x.buffer, ySab, msgSab, port: port2, spinMs: SPIN_MS, xCap: X_CAP, yCap: Y_CAP, outputs: OUTPUTS },
        transferList: [port2],
      });
      worker.unref();
      port1.unref();
      const w: PoolWorker = { worker, port: port1, ctrl: new Int32Array(ctrlSab), y: new Float32Array(ySab), msg: new Uint8Array(msgSab), seq: 0 };
      worker.on('error', (e) => (w.dead = `onnxruntime worker thread failed: ${String(e?.message ?? e).split('\n')[0]}`));
      worker.on('exit', (code) => (w.dead ??= `onnxruntime worker thread exited (${code})`));
      // Started before it is used: a worker that fails at start would otherwise be waited on for good.
      const t0 = performance.now();
      while (Atomics.load(w.ctrl, READY) !== 1) {
        if (performance.now() - t0 > START_MS) {
          void worker.terminate();
          throw new SpError('UNSUPPORTED', `onnxruntime worker thread did not start in ${START_MS / 1000} s`);
        }
        Atomics.wait(w.ctrl, READY, 0, 20);
      }
      this.workers.push(w);
    }
  }

  private post(w: PoolWorker, op: number, id: number, rows = 0, out = 0): void {
    if (w.dead) throw new SpError('UNSUPPORTED', w.dead);
    const c = w.ctrl;
    c[PARK] = 0;
    c[OP] = op;
    c[ID] = id;
    c[ROWS] = rows;
    c[OUT] = out;
    w.seq++;
    Atomics.store(c, SEQ, w.seq);
    Atomics.notify(c, SEQ);
  }

  private wait(w: PoolWorker): void {
    const c = w.ctrl;
    const t0 = performance.now();
    let spins = 0;
    while (Atomics.load(c, DONE) !== w.seq) {
      if ((++spins & 255) !== 0) continue;
      const dt = performance.now() - t0;
      if (dt > SPIN_MS) Atomics.wait(c, DONE, Atomics.load(c, DONE), 50);
      if (dt > TIMEOUT_MS) throw new SpError('UNSUPPORTED', `onnxruntime worker thread did not answer in ${TIMEOUT_MS / 1000} s`);
    }
    if (c[STATUS] !== 0) throw new SpError('UNSUPPORTED', `onnxruntime (worker thread): ${new TextDecoder().decode(w.msg.slice(0, c[MSG_LEN]))}`);
  }

  /**
   * Tells spinning workers to sleep now: called before a product that runs on onnxruntime's own
   * threads (the unembedding, large attention products), whose pool thread needs the core a
   * spinning worker holds (measured: a 2 ms spin made the 8-row unembedding ~30% slower).
   */
  park(): void {
    for (const w of this.workers) Atomics.store(w.ctrl, PARK, 1);
  }

  /** Builds slice `s` on worker `i` (its W and b sent in chunks through the x region); returns its id there. */
  load(i: number, s: SliceSpec, options: object, K: number, N: number): number {
    const w = this.workers[i];
    const id = nextId++;
    w.port.postMessage({ graph: s.graph, files: s.files.map((f) => ({ path: f.path, floats: f.data.length })), options, K, N });
    this.post(w, OP_LOAD_BEGIN, id);
    this.wait(w);
    let at = 0;
    for (const f of s.files) {
      for (let o = 0; o < f.data.length; o += X_CAP) {
        const n = Math.min(X_CAP, f.data.length - o);
        this.x.set(f.data.subarray(o, o + n));
        this.post(w, OP_LOAD_CHUNK, id, n, at + o);
        this.wait(w);
      }
      at += f.data.length;
    }
    this.post(w, OP_LOAD_END, id);
    this.wait(w);
    return id;
  }

  dispose(i: number, id: number): void {
    const w = this.workers[i];
    if (w.dead) return;
    this.post(w, OP_DISPOSE, id);
    this.wait(w);
  }

  /**
   * ys [M, N] = the product over all slices of xs [M, K]. Slice 0 (`cols[0]` columns) is `local`,
   * run on this thread; slice p > 0 (`ids[p − 1]`) on worker p − 1. `out`: which output (y; xw:
   * the bias-free product; g: gelu_new(y)).
   */
  run(xs: Float32Array, ys: Float32Array, M: number, K: number, cols: readonly number[], ids: readonly number[], local: (x: Float32Array, y: Float32Array, rows: number) => void, out: LinearOutput): void {
    let N = 0, widest = 0;
    for (const n of cols) {
      N += n;
      widest = Math.max(widest, n);
    }
    const chunk = Math.max(1, Math.min(Math.floor(X_CAP / K), Math.floor(Y_CAP / widest), M));
    for (let m0 = 0; m0 < M; m0 += chunk) {
      const mc = Math.min(chunk, M - m0);
      this.x.set(xs.subarray(m0 * K, (m0 + mc) * K));
      for (let p = 1; p < cols.length; p++) this.post(this.workers[p - 1], OP_RUN, ids[p - 1], mc, OUTPUTS.indexOf(out));
      // One row: every slice's output is a contiguous piece of y, slice 0's written in place.
      const mine = mc === 1 ? ys.subarray(m0 * N, m0 * N + cols[0]) : (this.scratch ??= new Float32Array(Y_CAP)).subarray(0, mc * cols[0]);
      let failed: unknown;
      try {
        local(xs.subarray(m0 * K, (m0 + mc) * K), mine, mc);
      } catch (e) {
        failed = e;
      }
      let c0 = cols[0];
      for (let p = 1; p < cols.length; p++) {
        const w = this.workers[p - 1];
        const n = cols[p];
        try {
          this.wait(w); // every worker, even after a failure: each must be idle before its next job
          for (let r = 0; r < mc; r++) ys.set(w.y.subarray(r * n, (r + 1) * n), (m0 + r) * N + c0);
        } catch (e) {
          failed ??= e;
        }
        c0 += n;
      }
      if (failed) throw failed;
      if (mc > 1) for (let r = 0; r < mc; r++) ys.set(mine.subarray(r * cols[0], (r + 1) * cols[0]), (m0 + r) * N);
    }
  }
}
