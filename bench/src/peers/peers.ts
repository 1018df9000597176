/**
 * The peers section of `pnpm bench` (issue #11): sp on each matrix engine vs transformers.js
 * (fp32, onnxruntime-node) vs a numpy reference, on the same random gpt2 checkpoint, same threads,
 * in interleaved rounds: every peer stays loaded in its own process and, round after round, each
 * workload runs on every peer in turn (the order rotating each round, after a short idle pause so
 * no peer's spinning threads eat into the next one's time), so a busy minute hits all of them alike.
 *
 *   pnpm bench -- --peers-only [--rounds 5] [--peers sp-ort,sp-wasm,sp-tfjs,transformers.js,numpy]
 *
 * Workloads: greedy decode batch 1 (16-token prompt, 64 new, tokens/s including the prefill);
 * 8 samples × 50 new tokens from one shared prompt (top-k 50, temperature 1; aggregate tokens/s,
 * prefill included); logit lens of 64 tokens × 13 rows (top-10, entropy; ms). Before timing, each
 * peer's prompt logits and greedy ids are compared with sp's (the check of the ONNX export).
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { benchRoot } from '../paths.js';
import { measureBandwidth, type Bandwidth } from '../machine.js';
import { fmt, mapStat, stat, type Stat } from '../stats.js';
import { weightBytesPerStep } from '../suite.js';
import { ensureCheckpoint, presetConfig } from '../weights.js';
import { ensureOnnx } from './onnx-export.js';
import { PEER_TAG, type PeerReply, type PeerRequest } from './protocol.js';

export const ALL_PEERS = ['sp-ort', 'sp-wasm', 'sp-tfjs', 'transformers.js', 'numpy'] as const;
export type PeerName = (typeof ALL_PEERS)[number];
export type Workload = 'decode' | 'sample' | 'lens';
const WORKLOADS: Workload[] = ['decode', 'sample', 'lens'];

export interface PeersOptions {
  peers: PeerName[];
  rounds: number;
  threads: number;
  log: (s: string) => void;
}

export interface PeerFigures {
  peer: PeerName;
  engine: string;
  loadMs: number;
  /** decode and sample: tokens/s; lens: ms. */
  figures: Partial<Record<Workload, { value: Stat; unit: 'tok/s' | 'ms' } | { skipped: string }>>;
  /** Cross-check with sp-wasm: max |Δ logit| at the prompt's last position, greedy ids equal, lens top-1 agreement. */
  check?: { maxAbsLogitDiff?: number; greedyEqual?: boolean; lensTop1Agree?: number };
}

export interface PeersReport {
  date: string;
  command: string;
  model: string;
  threads: number;
  rounds: number;
  cpu: string;
  cores: number;
  node: string;
  loadavgStart: number[];
  loadavgEnd: number[];
  bandwidth: Bandwidth;
  /** numpy's OpenBLAS sgemm on [2048²]·[2048²] with the same threads (the machine's practical FP32 peak). */
  sgemmGflops?: number;
  weightBytesPerStep: number;
  lensGflop: number;
  peers: PeerFigures[];
  skipped: Array<{ peer: string; why: string }>;
  table: string;
}

/** Idle time before each timed request (longer than OpenBLAS' default busy-wait, ~0.1 s). */
const SETTLE_MS = 300;

const prompt = (n: number, offset = 0) => Array.from({ length: n }, (_, i) => (1000 + 37 * (i + offset)) % 50000);

/** A peer process speaking the line protocol. */
class Peer {
  private replies: Array<(r: PeerReply & { ready?: boolean; engine?: string; loadMs?: number }) => void> = [];
  private rl: readline.Interface;
  private stderr = '';
  private exited?: string;
  constructor(readonly name: PeerName, private readonly proc: ChildProcessWithoutNullStreams) {
    this.rl = readline.createInterface({ input: proc.stdout });
    this.rl.on('line', (line) => {
      if (!line.startsWith(PEER_TAG)) return;
      this.replies.shift()?.(JSON.parse(line.slice(PEER_TAG.length)));
    });
    proc.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    proc.on('exit', (code, sig) => {
      this.exited = `exited (${sig ?? code}): ${this.stderr.trim().split('\n').slice(-3).join(' / ')}`;
      for (const r of this.replies.splice(0)) r({ error: this.exited });
    });
  }
  next(): Promise<PeerReply & { ready?: boolean; engine?: string; loadMs?: number }> {
    if (this.exited) return Promise.resolve({ error: this.exited });
    return new Promise((res) => this.replies.push(res));
  }
  ask(r: PeerRequest): Promise<PeerReply> {
    const p = this.next();
    this.proc.stdin.write(JSON.stringify(r) + '\n');
    return p;
  }
  close(): void {
    this.proc.stdin.end();
    this.rl.close();
  }
}

function python(): string | undefined {
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return undefined;
}

function startPeer(name: PeerName, spDir: string, onnxDir: string | undefined, threads: number): Peer | string {
  const dist = path.join(benchRoot, 'dist', 'peers');
  const t = String(threads);
  const base: NodeJS.ProcessEnv = { ...process.env, SP_THREADS: t, OMP_NUM_THREADS: t };
  delete base.SP_ENGINE;
  delete base.SP_MATMUL;
  let cmd: string, args: string[], env: NodeJS.ProcessEnv;
  if (name.startsWith('sp-')) {
    cmd = process.execPath;
    args = ['--no-warnings', path.join(dist, 'sp-child.js'), spDir, 'wasm'];
    env = { ...base, SP_ENGINE: name.slice(3) };
  } else if (name === 'transformers.js') {
    if (!onnxDir) return 'no ONNX export';
    cmd = process.execPath;
    args = ['--no-warnings', path.join(dist, 'tjs-child.js'), onnxDir, t];
    env = base;
  } else {
    const py = python();
    if (!py) return 'python3 with numpy not found';
    cmd = py;
    args = [path.join(benchRoot, 'peers', 'numpy_gpt2.py'), spDir];
    env = { ...base, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t };
  }
  return new Peer(name, spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
}

const maxAbsDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

export async function runPeers(o: PeersOptions, command: string): Promise<PeersReport> {
  const preset = 'gpt2';
  const spDir = ensureCheckpoint(preset, o.log);
  let onnx: string | undefined;
  if (o.peers.includes('transformers.js')) onnx = ensureOnnx(preset, spDir, o.log);
  const loadavgStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
  o.log('peers: measuring memory bandwidth…');
  const bandwidth = measureBandwidth(3);
  const skipped: PeersReport['skipped'] = [];
  const peers: Array<{ p: Peer; f: PeerFigures }> = [];
  // Load one at a time (loading is not what is measured), then keep all loaded.
  for (const name of o.peers) {
    const p = startPeer(name, spDir, onnx, o.threads);
    if (typeof p === 'string') {
      skipped.push({ peer: name, why: p });
      continue;
    }
    const ready = await p.next();
    if (!ready.ready) {
      skipped.push({ peer: name, why: (ready.error ?? 'did not start').slice(0, 300) });
      p.close();
      continue;
    }
    o.log(`peers: ${name} ready (${ready.engine}, load ${Math.round(ready.loadMs ?? 0)} ms)`);
    peers.push({ p, f: { peer: name, engine: ready.engine!, loadMs: ready.loadMs!, figures: {} } });
  }
  const req = (w: PeerRequest['workload'], seed = 0): PeerRequest =>
    w === 'decode' ? { workload: w, prompt: prompt(16), rows: 1, newTokens: 64, seed }
    : w === 'sample' ? { workload: w, prompt: prompt(16), rows: 8, newTokens: 50, seed }
    : w === 'lens' ? { workload: w, prompt: prompt(64), rows: 1, newTokens: 0, topk: 10, seed }
    : { workload: w, prompt: prompt(16), rows: 1, newTokens: 0, seed };
  try {
    // Cross-check against sp on its always-available engine (the wasm kernel) and warm up.
    const ref = peers.find((x) => x.f.peer === 'sp-wasm') ?? peers.find((x) => x.f.peer.startsWith('sp-'));
    const refLogits = ref ? (await ref.p.ask(req('logits'))).logits : undefined;
    const refDecode = ref ? (await ref.p.ask(req('decode'))).ids : undefined;
    const refLens = ref ? (await ref.p.ask(req('lens'))).top1 : undefined;
    let sgemmGflops: number | undefined;
    for (const { p, f } of peers) {
      const l = await p.ask(req('logits'));
      const dec = await p.ask(req('decode')); // also the decode warm-up
      const lens = await p.ask(req('lens'));
      await p.ask(req('sample'));
      f.check = {
        maxAbsLogitDiff: l.logits && refLogits ? maxAbsDiff(l.logits, refLogits) : undefined,
        greedyEqual: dec.ids && refDecode ? JSON.stringify(dec.ids) === JSON.stringify(refDecode) : undefined,
        lensTop1Agree: lens.top1 && refLens ? lens.top1.filter((v, i) => v === refLens[i]).length / refLens.length : undefined,
      };
      o.log(`peers: ${f.peer} check vs ${ref?.f.peer ?? 'nothing (no sp peer)'}: ${JSON.stringify(f.check)}`);
      if (f.check.greedyEqual === false || (f.check.maxAbsLogitDiff ?? 0) > 1e-3) throw new Error(`${f.peer} disagrees with sp: ${JSON.stringify(f.check)}`);
      if (f.peer === 'numpy') sgemmGflops = (await p.ask(req('peak'))).gflops;
    }
    const samples = new Map<string, number[]>();
    for (let r = 0; r < o.rounds; r++) {
      for (const w of WORKLOADS) {
        // The order turns each round, so no peer always follows the same one, and each request
        // waits out the previous peer's threads: OpenBLAS (numpy) and onnxruntime (transformers.js)
        // spin for a while after a call, on the cores the next peer needs.
        const order = peers.map((_, i) => peers[(i + r) % peers.length]);
        for (const { p, f } of order) {
          if (f.figures[w] && 'skipped' in f.figures[w]!) continue;
          await new Promise((res) => setTimeout(res, SETTLE_MS));
          const rep = await p.ask(req(w, r + 1));
          if (rep.skipped || rep.error) {
            f.figures[w] = { skipped: rep.skipped ?? `error: ${rep.error}` };
            continue;
          }
          const key = `${f.peer}/${w}`;
          samples.set(key, [...(samples.get(key) ?? []), rep.ms!]);
        }
      }
      o.log(`peers: round ${r + 1}/${o.rounds} done`);
    }
    for (const { f } of peers) {
      for (const w of WORKLOADS) {
        const ms = samples.get(`${f.peer}/${w}`);
        if (!ms) continue;
        const tokens = w === 'decode' ? 64 : w === 'sample' ? 400 : 0;
        f.figures[w] = w === 'lens' ? { value: stat(ms), unit: 'ms' } : { value: mapStat(stat(ms), (x) => (1000 * tokens) / x), unit: 'tok/s' };
      }
    }
    const c = presetConfig(preset);
    const lensGflop = (2 * 64 * (c.nLayer + 1) * c.dModel * c.dVocab + 2 * 64 * c.nLayer * 12 * c.dModel * c.dModel) / 1e9;
    const rep: PeersReport = {
      date: new Date().toISOString(), command, model: `${preset} (random weights, ${path.relative(benchRoot, spDir)})`, threads: o.threads, rounds: o.rounds,
      cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version, loadavgStart, loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100),
      bandwidth, sgemmGflops, weightBytesPerStep: weightBytesPerStep(c), lensGflop, peers: peers.map((x) => x.f), skipped, table: '',
    };
    rep.table = peersTable(rep);
    return rep;
  } finally {
    for (const { p } of peers) p.close();
  }
}

export function peersTable(r: PeersReport): string {
  const tjs = r.peers.find((p) => p.peer === 'transformers.js');
  const np = r.peers.find((p) => p.peer === 'numpy');
  const med = (p: PeerFigures | undefined, w: Workload) => {
    const f = p?.figures[w];
    return f && 'value' in f ? f.value.median : undefined;
  };
  const bw = r.bandwidth.best;
  const cell = (p: PeerFigures, w: Workload) => {
    const f = p.figures[w];
    if (!f) return '—';
    if ('skipped' in f) return '—';
    const v = f.value;
    const base = w === 'lens' ? med(np, w) : med(tjs, w);
    const ratio = base === undefined || p === (w === 'lens' ? np : tjs) ? '' : w === 'lens' ? ` **${(base / v.median).toFixed(2)}×**` : ` **${(v.median / base).toFixed(2)}×**`;
    // what the figure means against the machine: weight traffic (decode/sample) or arithmetic (lens)
    const steps = w === 'decode' ? v.median : w === 'sample' ? v.median / 8 : 0;
    const extra = w === 'lens' ? `, ${(r.lensGflop / (v.median / 1000)).toFixed(0)} GFLOP/s` : `, ${((steps * r.weightBytesPerStep) / 1e9).toFixed(1)} GB/s`;
    return `${fmt(v, w === 'lens' ? 0 : 1)}${ratio}${extra}`;
  };
  const lines = [
    `Peers on ${r.model}, ${r.threads} threads each, ${r.rounds} interleaved rounds; ${r.date}; \`${r.command}\`.`,
    `Machine: ${r.cores} cores (${r.cpu}), Node ${r.node}; read bandwidth ${bw.toFixed(1)} GB/s (bench/native/membw.c, best of 1..${r.cores} threads)${r.sgemmGflops ? `; sgemm peak ${r.sgemmGflops.toFixed(0)} GFLOP/s (numpy/OpenBLAS, ${r.threads} threads)` : ''}; load average ${r.loadavgStart.join(' ')} → ${r.loadavgEnd.join(' ')}.`,
    'Figures: median (min–max) over rounds; bold = ratio to transformers.js (decode, sampling; higher is better) or to numpy (lens: its time ÷ this one); GB/s = weight bytes read per decode step × steps/s; lens GFLOP/s = ' + `${r.lensGflop.toFixed(1)} GFLOP ÷ time.`,
    '',
    '| peer | engine | greedy decode, batch 1, 16 + 64 tok/s (incl. prefill) | 8 × 50 sampling, shared prompt, tok/s | logit lens 64 tok × 13 layers, ms | check vs sp (sp-wasm when it runs, else the first sp engine) |',
    '|---|---|---|---|---|---|',
  ];
  for (const p of r.peers) {
    const ck = p.check ?? {};
    const check = [
      ck.maxAbsLogitDiff !== undefined ? `max Δlogit ${ck.maxAbsLogitDiff.toExponential(1)}` : '',
      ck.greedyEqual !== undefined ? `greedy ids ${ck.greedyEqual ? 'equal' : 'DIFFER'}` : '',
      ck.lensTop1Agree !== undefined ? `lens top-1 ${(100 * ck.lensTop1Agree).toFixed(1)}% equal` : '',
    ].filter(Boolean).join(', ');
    lines.push(`| ${p.peer} | ${p.engine} | ${cell(p, 'decode')} | ${cell(p, 'sample')} | ${cell(p, 'lens')} | ${check || '—'} |`);
  }
  for (const s of r.skipped) lines.push(`| ${s.peer} | skipped: ${s.why.replace(/\|/g, '/')} | | | | |`);
  return lines.join('\n');
}

/** `node dist/peers/peers.js [--rounds N] [--peers a,b]`: the peers section alone (also `pnpm bench -- --peers-only`). */
export function writePeersReport(rep: PeersReport): string {
  const dir = path.join(benchRoot, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `peers-${rep.date.replace(/[:.]/g, '-')}.json`);
  const json = JSON.stringify(rep, null, 2) + '\n';
  fs.writeFileSync(file, json);
  fs.writeFileSync(path.join(dir, 'peers-latest.json'), json);
  return file;
}
