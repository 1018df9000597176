/**
 * `pnpm bench`: the performance figures of issue #5 on random GPT-2-shaped checkpoints.
 *
 *   pnpm bench                       # gpt2 + gpt2-medium: wasm (sp kernel, all cores / 1 thread), wasm with XNNPACK, cpu; 5 repeats
 *   pnpm bench -- --models gpt2 --backends wasm --repeats 3
 *   pnpm bench -- --quick            # gpt2 only, 2 repeats, short runs (smoke test)
 *   pnpm bench -- --peers-only --rounds 5   # only the peers section (sp engines vs transformers.js vs numpy; peers/peers.ts)
 *   pnpm bench -- --atlas-only               # only the atlas throughput section (atlas.ts: sp scan neurons/hour)
 *
 * Every configuration runs in its own process; each figure is min/median/max over repeats. Prints a
 * Markdown table and writes JSON to bench/results/<timestamp>.json and bench/results/latest.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { machineFacts, measureBandwidth, type MachineFacts } from './machine.js';
import { benchRoot, cliMain, repoRoot } from './paths.js';
import { fmt, stat, type Stat } from './stats.js';
import { RESULT_TAG, type SuiteArgs, type SuiteResult } from './suite.js';
import { ensureCheckpoint, presetConfig, type BenchPreset } from './weights.js';
import { xlAnalysis, type XlAnalysis } from './xl.js';
import { engineLabel } from './threads.js';
import { ALL_PEERS, runPeers, writePeersReport, type PeerName, type PeersReport } from './peers/peers.js';
import { atlasBench, type AtlasBenchReport } from './atlas.js';

interface Options {
  models: BenchPreset[];
  backends: string[];
  repeats: number;
  quick: boolean;
  /** Write the 6.4 GB random gpt2-xl checkpoint if missing and run it (see xl.ts). */
  xl: boolean;
  out?: string;
  /** The peers section (peers/peers.ts): off with --no-peers, alone with --peers-only. */
  peers: 'on' | 'off' | 'only';
  peerList: PeerName[];
  rounds: number;
  /** The atlas throughput section (atlas.ts): off with --no-atlas, alone with --atlas-only. */
  atlas: 'on' | 'off' | 'only';
}

function parseArgs(argv: string[]): Options {
  const o: Options = { models: ['gpt2', 'gpt2-medium'], backends: ['wasm', 'wasm-1t', 'wasm-xnnpack', 'cpu'], repeats: 5, quick: false, xl: false, peers: 'on', peerList: [...ALL_PEERS], rounds: 5, atlas: 'on' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--models') o.models = next().split(',') as BenchPreset[];
    else if (a === '--backends') o.backends = next().split(',');
    else if (a === '--repeats') o.repeats = Math.max(1, Number(next()));
    else if (a === '--out') o.out = next();
    else if (a === '--quick') o.quick = true;
    else if (a === '--xl') o.xl = true;
    else if (a === '--peers-only') o.peers = 'only';
    else if (a === '--no-peers') o.peers = 'off';
    else if (a === '--atlas-only') o.atlas = 'only';
    else if (a === '--no-atlas') o.atlas = 'off';
    else if (a === '--rounds') o.rounds = Math.max(1, Number(next()));
    else if (a === '--peers') {
      o.peerList = next().split(',') as PeerName[];
      const bad = o.peerList.find((p) => !(ALL_PEERS as readonly string[]).includes(p));
      if (bad) throw new Error(`unknown peer ${bad} (use ${ALL_PEERS.join(', ')})`);
    }
    else if (a === '--') continue;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: pnpm bench -- [--models gpt2,gpt2-medium] [--backends wasm,wasm-1t,wasm-xnnpack,wasm-xnnpack-2t,cpu,tensorflow] [--repeats N] [--quick] [--xl] [--out file.json] [--peers-only | --no-peers] [--rounds N] [--peers sp-ort,sp-wasm,sp-tfjs,transformers.js,numpy] [--atlas-only | --no-atlas]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}`);
  }
  if (o.quick) {
    o.repeats = Math.min(o.repeats, 2);
    if (!argv.includes('--rounds')) o.rounds = 2;
    if (!argv.includes('--models')) o.models = ['gpt2'];
  }
  if (!argv.includes('--backends') && nativeInstalled()) o.backends.push('tensorflow');
  return o;
}

function nativeInstalled(): boolean {
  const req = createRequire(path.join(repoRoot, 'packages/core/package.json'));
  for (const p of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
    try {
      req.resolve(p);
      return true;
    } catch {
      /* not installed */
    }
  }
  return false;
}

const dist = path.join(benchRoot, 'dist');
const say = (s: string) => process.stderr.write(s + '\n');

/**
 * Configurations: 'wasm' (sp's kernel on every core), 'wasm-<N>t' (sp's kernel on N threads,
 * $SP_THREADS), 'wasm-xnnpack[-<N>t]' (tfjs' own XNNPACK matmuls, $SP_MATMUL=tfjs, on N threads, for comparison), or a
 * backend name ('cpu': tfjs' JS backend, still with sp's kernel for the matrix products).
 */
function backendEnv(b: string): { backend: string; env: NodeJS.ProcessEnv } {
  const m = /^wasm-(\d+)t$/.exec(b);
  if (m) return { backend: 'wasm', env: { ...process.env, SP_THREADS: m[1] } };
  const x = /^wasm-xnnpack(?:-(\d+)t)?$/.exec(b); // XNNPACK's own threads: $SP_WASM_THREADS
  if (x) return { backend: 'wasm', env: { ...process.env, SP_MATMUL: 'tfjs', ...(x[1] ? { SP_WASM_THREADS: x[1] } : {}) } };
  return { backend: b, env: { ...process.env } };
}

function runSuiteChild(args: SuiteArgs, env: NodeJS.ProcessEnv): SuiteResult {
  const r = spawnSync(process.execPath, ['--no-warnings', path.join(dist, 'suite.js'), JSON.stringify(args)], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  const line = r.stdout.split('\n').find((l) => l.startsWith(RESULT_TAG));
  if (r.status !== 0 || !line) throw new Error(`suite failed (${args.backend}, ${path.basename(args.dir)}): exit ${r.status}\n${r.stdout.slice(-2000)}`);
  return JSON.parse(line.slice(RESULT_TAG.length)) as SuiteResult;
}

interface LoadRun {
  backend: string;
  threads: number;
  matmul: string;
  backendInitMs: number;
  loadMs: number;
  firstForwardMs: number;
  weightBytes: number;
  peakRssReadyMB: number;
  peakRssAfterForwardMB: number;
}
interface LoadFigures {
  backendInitMs: Stat;
  loadMs: Stat;
  firstForwardMs: Stat;
  weightMB: number;
  peakRssReadyMB: Stat;
  peakRssAfterForwardMB: Stat;
}

function runLoad(dir: string, backend: string, env: NodeJS.ProcessEnv, repeats: number): LoadFigures {
  const runs: LoadRun[] = [];
  for (let r = 0; r < repeats; r++) {
    const out = execFileSync(process.execPath, ['--no-warnings', path.join(dist, 'load-child.js'), dir, backend], { env, encoding: 'utf8' });
    runs.push(JSON.parse(out.trim().split('\n').pop()!) as LoadRun);
  }
  const s = (f: (x: LoadRun) => number) => stat(runs.map(f));
  return {
    backendInitMs: s((x) => x.backendInitMs),
    loadMs: s((x) => x.loadMs),
    firstForwardMs: s((x) => x.firstForwardMs),
    weightMB: runs[0].weightBytes / 2 ** 20,
    peakRssReadyMB: s((x) => x.peakRssReadyMB),
    peakRssAfterForwardMB: s((x) => x.peakRssAfterForwardMB),
  };
}

type ProcFigures = { wallMs: Stat; peakRssMB: Stat } | { skipped: string };

/** Wall time and peak RSS of a node command (first run discarded: it warms the OS file cache). */
function runProcess(args: string[], repeats: number): ProcFigures {
  const rssFile = path.join(os.tmpdir(), `sp-bench-rss-${process.pid}.json`);
  const wall: number[] = [];
  const rss: number[] = [];
  for (let r = 0; r < repeats + 1; r++) {
    const t0 = performance.now();
    const p = spawnSync(process.execPath, ['--import', path.join(dist, 'rss-reporter.js'), ...args], { env: { ...process.env, SP_BENCH_RSS_OUT: rssFile }, encoding: 'utf8' });
    const dt = performance.now() - t0;
    if (p.status !== 0) return { skipped: `failed: ${p.stderr.trim().split('\n')[0]}` };
    if (r === 0) continue;
    wall.push(dt);
    rss.push((JSON.parse(fs.readFileSync(rssFile, 'utf8')) as { maxRssMB: number }).maxRssMB);
  }
  fs.rmSync(rssFile, { force: true });
  return { wallMs: stat(wall), peakRssMB: stat(rss) };
}

/** `sp neuron` as a user runs it (built CLI), and the same reads through `@sp/core/light` alone. */
function runNeuron(dir: string, repeats: number): { cli: ProcFigures; light: ProcFigures } {
  const cli: ProcFigures = fs.existsSync(cliMain)
    ? runProcess([cliMain, 'neuron', '--model', dir, '--layer', '5', '--index', '100', '--json'], repeats)
    : { skipped: 'CLI not built (pnpm -r run build)' };
  return { cli, light: runProcess([path.join(dist, 'neuron-light-child.js'), dir, '5', '100'], repeats) };
}

/** The floor under any command: starting Node and exiting. */
function runNodeStartup(repeats: number): ProcFigures {
  return runProcess(['-e', '0'], repeats);
}

interface ModelReport {
  model: BenchPreset;
  weightMB: number;
  load?: LoadFigures;
  neuron?: ReturnType<typeof runNeuron>;
  runs: Array<SuiteResult & { label: string; weightGBps: Stat; bandwidthFraction: number }>;
}

export interface BenchReport {
  date: string;
  nodeStartup: ProcFigures;
  machine: MachineFacts & { loadavgEnd: number[] };
  options: Options;
  models: ModelReport[];
  xl: XlAnalysis;
  peers?: PeersReport;
  atlas?: AtlasBenchReport;
}

function table(rep: BenchReport): string {
  const bw = rep.machine.bandwidth.best;
  const lines: string[] = [];
  lines.push(`Machine: ${rep.machine.cores} cores (${rep.machine.cpu}), ${rep.machine.memGB} GB RAM, Node ${rep.machine.node}; measured read bandwidth ${bw.toFixed(1)} GB/s (${rep.machine.bandwidth.byThreads.map((t) => `${t.threads} thr ${t.gbps.median.toFixed(1)}`).join(', ')}); load average ${rep.machine.loadavgStart.join(' ')} → ${rep.machine.loadavgEnd.join(' ')}.`);
  lines.push('Figures: median (min–max) over repeats.', '');
  lines.push('| model | backend | decode tok/s (KV cache, batch 1) | weight traffic GB/s (% of measured bw) | naive tok/s (no cache) | KV-cache tok/s, same job | probe 8×50 tok/s | lens 64 tok ms | rankings 64 tok ms |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const m of rep.models) {
    for (const r of m.runs) {
      lines.push(
        `| ${m.model} | ${r.label} | ${fmt(r.decode.tokensPerS)} | ${fmt(r.weightGBps)} (${(100 * r.bandwidthFraction).toFixed(0)}%) | ${fmt(r.naive.tokensPerS, 2)} | ${fmt(r.naive.kvTokensPerS)} | ${fmt(r.probe?.tokensPerS)} | ${fmt(r.lens?.ms, 0)} | ${fmt(r.rankings?.ms, 0)} |`,
      );
    }
  }
  lines.push('', '| model | weights MiB | backend start ms | load ms (safetensors → ready) | peak RSS at ready MiB (× weights) | 1st forward ms | peak RSS after 1st forward MiB (× weights) | `sp neuron` ms / peak RSS MiB | same reads via @sp/core/light ms / peak RSS MiB |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
  for (const m of rep.models) {
    const l = m.load;
    const proc = (f: ProcFigures | undefined) => (!f ? '—' : 'skipped' in f ? f.skipped : `${fmt(f.wallMs, 0)} / ${fmt(f.peakRssMB, 0)}`);
    const x = (s: Stat | undefined) => (s && l ? `${fmt(s, 0)} (${(s.median / l.weightMB).toFixed(2)}×)` : '—');
    lines.push(`| ${m.model} | ${m.weightMB.toFixed(0)} | ${fmt(l?.backendInitMs, 0)} | ${fmt(l?.loadMs, 0)} | ${x(l?.peakRssReadyMB)} | ${fmt(l?.firstForwardMs, 0)} | ${x(l?.peakRssAfterForwardMB)} | ${proc(m.neuron?.cli)} | ${proc(m.neuron?.light)} |`);
  }
  const ns = rep.nodeStartup;
  if ('wallMs' in ns) lines.push('', `Process floor: \`node -e 0\` takes ${fmt(ns.wallMs, 0)} ms and ${fmt(ns.peakRssMB, 0)} MB on this machine.`);
  lines.push('', `gpt2-xl: ${rep.xl.summary}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const command = `pnpm bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).filter((a) => a !== '--').join(' ') : ''}`;
  const atlas = () => atlasBench({ neurons: o.quick ? 64 : 256, probeNeurons: o.quick ? 8 : 32, corpusBytes: o.quick ? 50_000 : 1_000_000, log: say }, command);
  if (o.atlas === 'only') {
    process.stdout.write((await atlas()).table + '\n');
    return;
  }
  const peers = () => runPeers({ peers: o.peerList, rounds: o.rounds, threads: os.cpus().length, log: say }, command);
  if (o.peers === 'only') {
    const rep = await peers();
    process.stdout.write(rep.table + '\n');
    say(`wrote ${path.relative(repoRoot, writePeersReport(rep))} and bench/results/peers-latest.json`);
    return;
  }
  say(`bench: models ${o.models.join(', ')}; backends ${o.backends.join(', ')}; ${o.repeats} repeats`);
  say('measuring memory bandwidth…');
  const facts = machineFacts(measureBandwidth(o.quick ? 3 : 5));
  const models: ModelReport[] = [];
  for (const name of o.models) {
    const dir = ensureCheckpoint(name, say);
    const cfg = presetConfig(name);
    const rep: ModelReport = { model: name, weightMB: 0, runs: [] };
    say(`${name}: load (${o.repeats}×, fresh processes)`);
    rep.load = runLoad(dir, 'wasm', process.env, o.repeats);
    rep.weightMB = rep.load.weightMB;
    say(`${name}: sp neuron`);
    rep.neuron = runNeuron(dir, o.repeats);
    for (const b of o.backends) {
      const slow = b === 'cpu';
      if (slow && name !== 'gpt2') continue; // pure-JS backend: one model is enough to compare
      const { backend, env } = backendEnv(b);
      say(`${name}: ${b}`);
      const args: SuiteArgs = {
        dir,
        backend,
        repeats: slow ? Math.min(2, o.repeats) : o.repeats,
        decodeTokens: slow ? 4 : o.quick ? 16 : 64,
        naiveTokens: slow ? 2 : o.quick ? 4 : 16,
        decodeOnly: slow,
      };
      try {
        const r = runSuiteChild(args, env);
        const gbps = stat([r.decode.tokensPerS.min, r.decode.tokensPerS.median, r.decode.tokensPerS.max].map((t) => (t * r.weightBytesPerStep) / 1e9));
        const weightGBps = { ...gbps, n: r.decode.tokensPerS.n };
        const label = engineLabel(r.backend, r);
        rep.runs.push({ ...r, label, weightGBps, bandwidthFraction: weightGBps.median / facts.bandwidth.best });
      } catch (e) {
        say(`  ${b} failed: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    void cfg;
    models.push(rep);
  }
  const nodeStartup = runNodeStartup(o.repeats);
  say('gpt2-xl: capacity analysis');
  const xl = xlAnalysis({ write: o.xl, log: say });
  const peersRep = o.peers === 'on' ? await peers() : undefined;
  if (peersRep) writePeersReport(peersRep);
  const atlasRep = o.atlas === 'on' ? await atlas() : undefined;
  const report: BenchReport = { date: new Date().toISOString(), nodeStartup, machine: { ...facts, loadavgEnd: os.loadavg().map((x) => Math.round(x * 100) / 100) }, options: o, models, xl, peers: peersRep, atlas: atlasRep };
  const md = table(report) + (peersRep ? '\n\n' + peersRep.table : '') + (atlasRep ? '\n\n' + atlasRep.table : '');
  process.stdout.write(md + '\n');
  const dir = path.join(benchRoot, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = o.out ?? path.join(dir, `${report.date.replace(/[:.]/g, '-')}.json`);
  const json = JSON.stringify({ ...report, table: md }, null, 2) + '\n';
  fs.writeFileSync(file, json);
  if (!o.out) fs.writeFileSync(path.join(dir, 'latest.json'), json);
  say(`wrote ${path.relative(repoRoot, file)}${o.out ? '' : ' and bench/results/latest.json'}`);
}

await main();
