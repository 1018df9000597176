/**
 * Machine facts for the report: cores, CPU, memory, Node, load average, and the measured memory
 * read bandwidth (native helper bench/native/membw.c compiled with the system C compiler into
 * bench/.cache/; a single-threaded JS loop when no compiler is available).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchRoot } from './paths.js';
import { stat, type Stat } from './stats.js';

export interface Bandwidth {
  method: string;
  /** GB/s reading a 512 MB array, by thread count. */
  byThreads: Array<{ threads: number; gbps: Stat }>;
  /** Best of all thread counts (what a bandwidth-bound kernel can hope for). */
  best: number;
}

export interface MachineFacts {
  cores: number;
  cpu: string;
  memGB: number;
  node: string;
  platform: string;
  loadavgStart: number[];
  bandwidth: Bandwidth;
}

function compileHelper(): string | undefined {
  const src = path.join(benchRoot, 'native', 'membw.c');
  const bin = path.join(benchRoot, '.cache', 'membw');
  if (fs.existsSync(bin) && fs.statSync(bin).mtimeMs >= fs.statSync(src).mtimeMs) return bin;
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  for (const cc of ['cc', 'gcc', 'clang', 'g++']) {
    const args = cc === 'g++' ? ['-x', 'c'] : [];
    const r = spawnSync(cc, [...args, '-O3', '-march=native', '-pthread', '-o', bin, src], { stdio: 'ignore' });
    if (r.status === 0) return bin;
  }
  return undefined;
}

function jsBandwidth(reps: number): Bandwidth {
  const a = new Float64Array(64 << 20); // 512 MB
  a.fill(1);
  const g: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let i = 0; i < a.length; i += 4) {
      s0 += a[i];
      s1 += a[i + 1];
      s2 += a[i + 2];
      s3 += a[i + 3];
    }
    const dt = performance.now() - t0;
    if (s0 + s1 + s2 + s3 < 0) throw new Error('unreachable');
    g.push(a.byteLength / dt / 1e6);
  }
  const s = stat(g);
  return { method: 'JS Float64Array sum, 1 thread (no C compiler found)', byThreads: [{ threads: 1, gbps: s }], best: s.median };
}

export function measureBandwidth(reps = 5): Bandwidth {
  const bin = compileHelper();
  if (!bin) return jsBandwidth(reps);
  const threads = Math.max(1, os.cpus().length);
  const out = JSON.parse(execFileSync(bin, [String(threads), String(reps)], { encoding: 'utf8' })) as { threads: Array<{ n: number; gbps: number[] }> };
  const byThreads = out.threads.map((t) => ({ threads: t.n, gbps: stat(t.gbps) }));
  return { method: 'C read of a 512 MB float array (bench/native/membw.c), 1..N threads', byThreads, best: Math.max(...byThreads.map((t) => t.gbps.median)) };
}

export function machineFacts(bandwidth: Bandwidth): MachineFacts {
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    bandwidth,
  };
}
