/**
 * Atlas throughput (issue #13): neurons/hour of `sp scan` for gpt2-small shapes, measured on a
 * subset of neurons and extrapolated, in three settings — projection only; with speaking-probe
 * samples (3 × 30 tokens); with a 1 MB corpus (generated text; the pass is measured on
 * `corpusBytes` and scaled linearly in tokens) — and the full-scan estimates for gpt2 / medium / xl.
 *
 *   node bench/dist/atlas.js [--neurons 128] [--probe-neurons 16] [--corpus-bytes 1000000]
 *
 * Larger models are scaled from the gpt2 figures by cost per neuron: the projection by d_model, a
 * probe token and a corpus token by the forward pass's multiply-adds (12·n_layer·d² + d·V).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gpt2 } from '@sp/core';
import { corpusPass, openStore, readCorpus, resolveSettings, runScan } from '@sp/atlas';
import { ensureCheckpoint, presetConfig, type BenchPreset } from './weights.js';

export interface AtlasBenchOptions {
  /** Neurons timed for the projection-only figure (one layer). */
  neurons: number;
  /** Neurons timed with probes. */
  probeNeurons: number;
  /** Bytes of generated corpus actually streamed (extrapolated to 1 MB). */
  corpusBytes: number;
  log?: (s: string) => void;
}

export interface AtlasBenchReport {
  command: string;
  model: 'gpt2';
  measured: { projectionNeuronsPerHour: number; probeNeuronsPerHour: number; corpusSecondsPerMB: number; corpusTokensPerMB: number; corpusBytes: number };
  /** Neurons/hour of a whole gpt2 scan in each setting (corpus pass amortised over all 36 864 neurons). */
  gpt2: { projection: number; probes: number; probesCorpus1MB: number };
  fullScanHours: Array<{ model: BenchPreset; neurons: number; projection: number; probes: number; probesCorpus1MB: number }>;
  table: string;
}

/** Deterministic English-like text: documents of 20-120 words from a fixed vocabulary. */
export function generatedCorpus(bytes: number, seed = 1): string {
  const words = 'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their has would when if so no will what more can time people year new first last long great little own other old right big high different small large next early young important few public bad same able city country world Japan Tokyo river music school water history game science market'.split(' ');
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const docs: string[] = [];
  let size = 0;
  while (size < bytes) {
    const n = 20 + Math.floor(rnd() * 100);
    const doc = Array.from({ length: n }, (_, i) => (i === 0 ? 'The' : words[Math.floor(rnd() * words.length)])).join(' ') + '.';
    docs.push(doc);
    size += doc.length + 1;
  }
  return docs.join('\n') + '\n';
}

const macs = (p: BenchPreset) => {
  const c = presetConfig(p);
  return 12 * c.nLayer * c.dModel * c.dModel + c.dModel * c.dVocab;
};

export async function atlasBench(o: AtlasBenchOptions, command = 'node bench/dist/atlas.js'): Promise<AtlasBenchReport> {
  const log = o.log ?? (() => {});
  const dir = ensureCheckpoint('gpt2', log);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-atlas-bench-'));
  const model = await gpt2(dir, { backend: 'wasm' });
  try {
    const store = await openStore(path.join(tmp, 'bench.sqlite'));
    const timeScan = async (settings: ReturnType<typeof resolveSettings>, n: number) => {
      const s = await runScan({ model, modelName: 'gpt2', modelDigest: `bench-${settings.samples}`, store, settings, layers: [5], neurons: { start: 0, end: n } });
      return s.neurons_per_hour!;
    };
    log(`atlas: projection only, ${o.neurons} neurons`);
    const projection = await timeScan(resolveSettings({ samples: 0 }), o.neurons);
    log(`atlas: probes (3 samples × 30 tokens), ${o.probeNeurons} neurons`);
    const probes = await timeScan(resolveSettings({ samples: 3, maxNewTokens: 30 }), o.probeNeurons);
    await store.close();
    const file = path.join(tmp, 'corpus.txt');
    fs.writeFileSync(file, generatedCorpus(o.corpusBytes));
    const corpus = readCorpus(file);
    log(`atlas: corpus pass over ${(o.corpusBytes / 1e6).toFixed(3)} MB, all 12 layers in one stream`);
    const t0 = performance.now();
    await corpusPass(model, corpus, Array.from({ length: 12 }, (_, i) => i), { window: 64, topExamples: 10, context: 10 });
    const secs = (performance.now() - t0) / 1000;
    const tokens = corpus.docs.reduce((a, d) => a + model.encode(d).length, 0);
    const corpusSecondsPerMB = secs * (1e6 / o.corpusBytes);
    // A full scan: every neuron's projection + probes, plus one corpus pass for the whole model.
    const hours = (p: BenchPreset, perHour: number, scale: number) => (presetConfig(p).nLayer * presetConfig(p).dMlp) / perHour * scale;
    const rows = (['gpt2', 'gpt2-medium', 'gpt2-xl'] as BenchPreset[]).map((p) => {
      const c = presetConfig(p), n = c.nLayer * c.dMlp;
      const proj = hours(p, projection, c.dModel / 768);
      const prb = hours(p, probes, macs(p) / macs('gpt2'));
      const corp = (corpusSecondsPerMB * macs(p) / macs('gpt2') * (c.nLayer / 12)) / 3600; // the pass also reads every layer
      return { model: p, neurons: n, projection: proj, probes: prb, probesCorpus1MB: prb + corp };
    });
    const nG = 12 * 3072;
    const g = rows[0];
    const report: Omit<AtlasBenchReport, 'table'> = {
      command,
      model: 'gpt2',
      measured: { projectionNeuronsPerHour: projection, probeNeuronsPerHour: probes, corpusSecondsPerMB, corpusTokensPerMB: tokens * (1e6 / o.corpusBytes), corpusBytes: o.corpusBytes },
      gpt2: { projection: nG / g.projection, probes: nG / g.probes, probesCorpus1MB: nG / g.probesCorpus1MB },
      fullScanHours: rows,
    };
    const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
    const table = [
      `Atlas throughput (\`${command}\`; gpt2-small shapes, wasm, ${os.cpus().length} cores; ${o.neurons} / ${o.probeNeurons} neurons timed, corpus pass on ${(o.corpusBytes / 1e6).toFixed(3)} MB scaled to 1 MB = ${Math.round(report.measured.corpusTokensPerMB)} tokens):`,
      '',
      '| setting | gpt2 neurons/hour |',
      '|---|---|',
      `| projection only | ${Math.round(report.gpt2.projection)} |`,
      `| + probes (3 × 30 tokens) | ${Math.round(report.gpt2.probes)} |`,
      `| + probes + 1 MB corpus (pass amortised over all ${nG} neurons; ${f(corpusSecondsPerMB)} s per MB) | ${Math.round(report.gpt2.probesCorpus1MB)} |`,
      '',
      '| model | neurons | full scan, projection only | with probes | with probes + 1 MB corpus |',
      '|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.model} | ${r.neurons} | ${f(r.projection)} h | ${f(r.probes)} h | ${f(r.probesCorpus1MB)} h |`),
      '',
      'gpt2-medium and gpt2-xl are scaled from the gpt2 measurement (projection ∝ d_model; probe and corpus tokens ∝ 12·n_layer·d² + d·V), not measured.',
    ].join('\n');
    return { ...report, table };
  } finally {
    model.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Run directly: node bench/dist/atlas.js [--neurons N] [--probe-neurons N] [--corpus-bytes B]
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const arg = (name: string, d: number) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : d;
  };
  const argv = process.argv.slice(2).join(' ');
  const rep = await atlasBench(
    { neurons: arg('--neurons', 128), probeNeurons: arg('--probe-neurons', 16), corpusBytes: arg('--corpus-bytes', 1_000_000), log: (s) => process.stderr.write(s + '\n') },
    `node bench/dist/atlas.js${argv ? ' ' + argv : ''}`,
  );
  process.stdout.write(rep.table + '\n');
  process.exit(0);
}
