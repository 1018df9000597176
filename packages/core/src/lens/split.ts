/**
 * The lens statistics (cell-stats.ts) over two threads: this one takes the first half of a block's
 * cells, a worker thread the second. They are plain float64 loops over every logit (13 rows ×
 * 50,257 per position for GPT-2 small), ~40% of a 64-token lens on one core.
 *
 * The worker's half travels as a resizable ArrayBuffer transferred there and back (no copy either
 * way), shrunk to nothing on return: its memory is given back at once instead of at some garbage
 * collection of the worker's isolate. One copy is made, from the logits into that buffer.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { SpError } from '../errors.js';
import { workerSource } from '../platform.js';
import { cellStats, expTable, type CellStats } from './cell-stats.js';

/** Fewest rows (cells × R) worth the round trip (a worker's reply takes ~0.1 ms; 64 rows ~30 ms of work). */
const MIN_ROWS = 64;
const TIMEOUT_MS = 600_000;
const START_MS = 30_000;

interface Resizable extends ArrayBuffer {
  resize(bytes: number): void;
}
const resizable = (bytes: number): Resizable => new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Resizable)(bytes, { maxByteLength: bytes });

interface StatsWorker {
  worker: Worker;
  port: MessagePort;
  flag: Int32Array;
  seq: number;
  sentTable: boolean;
  dead?: string;
}
let w: StatsWorker | undefined;

/** Worker body (eval'd with cellStats' source before it). */
function workerMain(): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const { port, flagSab } = workerData as { port: import('node:worker_threads').MessagePort; flagSab: SharedArrayBuffer };
  const flag = new Int32Array(flagSab);
  Atomics.store(flag, 1, 1); // ready
  let T: Float64Array | undefined;
  port.on('message', (m: { seq: number; buf: ArrayBuffer; cells: number; R: number; outRow: number; V: number; k: number; stats: boolean; targets?: number[][]; table?: Float64Array }) => {
    T ??= m.table;
    let reply: object;
    const transfer: ArrayBuffer[] = [m.buf];
    try {
      const out = (globalThis as unknown as { cellStats: typeof cellStats }).cellStats(new Float32Array(m.buf), m.cells, m.R, m.outRow, m.V, m.k, m.stats, m.targets, T!);
      for (const a of Object.values(out)) transfer.push((a as Float64Array).buffer as ArrayBuffer);
      reply = { buf: m.buf, out };
    } catch (e) {
      reply = { buf: m.buf, error: String((e as Error)?.message ?? e).split('\n')[0] };
    }
    port.postMessage(reply, transfer);
    Atomics.store(flag, 0, m.seq);
    Atomics.notify(flag, 0);
  });
}

function statsWorker(): StatsWorker {
  if (w && !w.dead) return w;
  const flagSab = new SharedArrayBuffer(8); // [0]: last answered job, [1]: started
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(workerSource(workerMain, `globalThis.cellStats = ${cellStats.toString()};\n`), { eval: true, workerData: { port: port2, flagSab }, transferList: [port2] });
  worker.unref();
  port1.unref();
  const sw: StatsWorker = { worker, port: port1, flag: new Int32Array(flagSab), seq: 0, sentTable: false };
  worker.on('error', (e) => (sw.dead = `lens worker thread failed: ${String(e?.message ?? e).split('\n')[0]}`));
  worker.on('exit', (code) => (sw.dead ??= `lens worker thread exited (${code})`));
  const t0 = performance.now();
  while (Atomics.load(sw.flag, 1) !== 1) {
    if (performance.now() - t0 > START_MS) {
      void worker.terminate();
      throw new SpError('UNSUPPORTED', `lens worker thread did not start in ${START_MS / 1000} s`);
    }
    Atomics.wait(sw.flag, 1, 0, 20);
  }
  return (w = sw);
}

const concat = <T extends Int32Array | Float64Array>(a: T | undefined, b: T | undefined): T | undefined => {
  if (!a || !b) return a ?? b;
  const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};

/**
 * cellStats over `cells` cells of `logits` (rows of V floats, R rows a cell), on this thread and,
 * with `threads` ≥ 2 and enough rows, a worker: the same values either way (each cell's numbers come
 * from its own rows alone, in the same order).
 */
export function splitCellStats(logits: Float32Array, cells: number, R: number, outRow: number, V: number, k: number, stats: boolean, targets: number[][] | undefined, threads: number): CellStats {
  const T = expTable();
  if (threads < 2 || cells < 2 || cells * R < MIN_ROWS) return cellStats(logits, cells, R, outRow, V, k, stats, targets, T);
  const sw = statsWorker();
  const h = cells >> 1, rest = cells - h;
  const buf = resizable(rest * R * V * 4);
  new Float32Array(buf).set(logits.subarray(h * R * V, cells * R * V));
  const seq = ++sw.seq;
  sw.port.postMessage({ seq, buf, cells: rest, R, outRow, V, k, stats, targets: targets?.slice(h), table: sw.sentTable ? undefined : T }, [buf]);
  sw.sentTable = true;
  let mine: CellStats;
  try {
    mine = cellStats(logits.subarray(0, h * R * V), h, R, outRow, V, k, stats, targets?.slice(0, h), T);
  } finally {
    // Wait for the worker even after a failure here: its reply must not be read by the next call.
    const t0 = performance.now();
    while (Atomics.load(sw.flag, 0) !== seq) {
      if (sw.dead) throw new SpError('UNSUPPORTED', sw.dead);
      if (performance.now() - t0 > TIMEOUT_MS) throw new SpError('UNSUPPORTED', `lens worker thread did not answer in ${TIMEOUT_MS / 1000} s`);
      Atomics.wait(sw.flag, 0, Atomics.load(sw.flag, 0), 50);
    }
  }
  const reply = receiveMessageOnPort(sw.port)!.message as { buf: Resizable; out?: CellStats; error?: string };
  reply.buf.resize(0);
  if (reply.error) throw new SpError('UNSUPPORTED', `lens worker thread: ${reply.error}`);
  const theirs = reply.out!;
  return {
    topIds: concat(mine.topIds, theirs.topIds),
    topLogp: concat(mine.topLogp, theirs.topLogp),
    entropy: concat(mine.entropy, theirs.entropy),
    kl: concat(mine.kl, theirs.kl),
    targetLogp: concat(mine.targetLogp, theirs.targetLogp),
    ranks: concat(mine.ranks, theirs.ranks),
  };
}
