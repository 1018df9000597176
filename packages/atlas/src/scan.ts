/**
 * A scan: the plan of units, skipping those the store has done, the corpus pass once (cached in
 * the store per layer), each unit computed and written in one transaction. Killed at any moment
 * and started again, it continues where it was and ends with exactly an uninterrupted scan's rows.
 */
import { SpError, type GPT2 } from '@sp/core';
import { computeUnit } from './compute.js';
import type { Corpus } from './corpus.js';
import { corpusPass } from './examples.js';
import { passDigest, settingsDigest, toRuns } from './settings.js';
import type { AtlasStore, CorpusExample, CorpusPassKey, ScanKey, ScanSettings, Unit } from './types.js';

/**
 * The units of a scan: for each layer, the selected neurons cut at multiples of blockSize (so the
 * partition depends only on the settings and the selection, never on the run).
 */
export function planUnits(layers: number[], neurons: number[] | { start: number; end: number }, blockSize: number): Unit[] {
  const list = Array.isArray(neurons) ? [...new Set(neurons)].sort((a, b) => a - b) : Array.from({ length: neurons.end - neurons.start }, (_, i) => neurons.start + i);
  const units: Unit[] = [];
  for (const layer of [...new Set(layers)].sort((a, b) => a - b)) {
    for (const run of toRuns(list)) {
      for (let s = run.start; s < run.end; s = (Math.floor(s / blockSize) + 1) * blockSize) {
        units.push({ layer, start: s, end: Math.min(run.end, (Math.floor(s / blockSize) + 1) * blockSize) });
      }
    }
  }
  return units;
}

export function corpusPassKey(modelDigest: string, settings: ScanSettings): CorpusPassKey | null {
  return settings.corpus ? { modelDigest, corpusDigest: settings.corpus.digest, passDigest: passDigest(settings) } : null;
}

export interface ScanProgress {
  phase: 'corpus' | 'units';
  /** Corpus windows (phase corpus) or units (phase units) done this run, of total. */
  done: number;
  total: number;
  neuronsDone: number;
  neuronsTotal: number;
  /** Seconds left at this run's pace (null until something is done). */
  etaSeconds: number | null;
}

export interface RunScanOptions {
  model: GPT2;
  /** What the scan record calls the model (name or directory). */
  modelName: string;
  modelDigest: string;
  store: AtlasStore;
  settings: ScanSettings;
  layers: number[];
  /** Neuron indices (any set) or a range [start, end). */
  neurons: number[] | { start: number; end: number };
  /** The corpus file's contents (required when settings.corpus is set; its digest must match). */
  corpus?: Corpus | null;
  onProgress?: (p: ScanProgress) => void;
  /** Stop after the unit in flight (e.g. on SIGINT). */
  signal?: AbortSignal;
}

export interface ScanSummary {
  scan: ScanKey;
  model: string;
  units_total: number;
  units_done: number;
  units_skipped: number;
  neurons: number;
  neurons_computed: number;
  seconds: number;
  neurons_per_hour: number | null;
  corpus_pass: 'none' | 'cached' | 'computed';
  stopped: boolean;
}

/** Covered by the done units of the same layer (units of another selection may cover it together). */
function covered(unit: Unit, done: Unit[]): boolean {
  const spans = done.filter((d) => d.layer === unit.layer && d.end > unit.start && d.start < unit.end).sort((a, b) => a.start - b.start);
  let at = unit.start;
  for (const d of spans) {
    if (d.start > at) return false;
    at = Math.max(at, d.end);
    if (at >= unit.end) return true;
  }
  return at >= unit.end;
}

export async function runScan(o: RunScanOptions): Promise<ScanSummary> {
  const t0 = performance.now();
  const { model, store, settings } = o;
  const { nLayer, dMlp } = model.config;
  for (const l of o.layers) if (!Number.isInteger(l) || l < 0 || l >= nLayer) throw new SpError('OUT_OF_RANGE', `layer ${l} is out of range [0, ${nLayer - 1}]`);
  const neuronList = Array.isArray(o.neurons) ? o.neurons : Array.from({ length: o.neurons.end - o.neurons.start }, (_, i) => (o.neurons as { start: number }).start + i);
  for (const j of neuronList) if (!Number.isInteger(j) || j < 0 || j >= dMlp) throw new SpError('OUT_OF_RANGE', `neuron ${j} is out of range [0, ${dMlp - 1}]`);
  if (o.layers.length === 0 || neuronList.length === 0) throw new SpError('BAD_INPUT', 'nothing to scan: the layer or neuron selection is empty');
  if (settings.corpus) {
    if (!o.corpus) throw new SpError('BAD_INPUT', `the settings name corpus ${settings.corpus.name}: pass its contents`);
    if (o.corpus.digest !== settings.corpus.digest) throw new SpError('BAD_INPUT', `corpus ${o.corpus.name} does not match the settings' corpus digest`);
    if (settings.window + 1 > model.config.nCtx) throw new SpError('OUT_OF_RANGE', `window ${settings.window} + the BOS token exceeds the model's context of ${model.config.nCtx} (use a window ≤ ${model.config.nCtx - 1})`);
  }
  const key: ScanKey = { modelDigest: o.modelDigest, settingsDigest: settingsDigest(settings) };
  const units = planUnits(o.layers, neuronList, settings.blockSize);
  const layers = [...new Set(o.layers)].sort((a, b) => a - b);
  await store.openScan({
    ...key, model: o.modelName, settings, layers,
    neurons: { start: Math.min(...neuronList), end: Math.max(...neuronList) + 1 }, unitsTotal: units.length,
  });
  const done = await store.doneUnits(key);
  const todo = units.filter((u) => !covered(u, done));
  const neuronsTotal = todo.reduce((a, u) => a + u.end - u.start, 0);

  // ---- the corpus pass: once, for every layer that still has work and no cached pass ----
  let corpusState: ScanSummary['corpus_pass'] = 'none';
  const examples = new Map<number, CorpusExample[][]>();
  const pk = corpusPassKey(o.modelDigest, settings);
  if (pk && todo.length) {
    const need = [...new Set(todo.map((u) => u.layer))];
    const missing: number[] = [];
    for (const l of need) {
      const cached = await store.corpusExamples(pk, l);
      if (cached) examples.set(l, cached);
      else missing.push(l);
    }
    corpusState = missing.length ? 'computed' : 'cached';
    if (missing.length) {
      const tc = performance.now();
      const got = await corpusPass(model, o.corpus!, missing, {
        window: settings.window, topExamples: settings.topExamples, context: settings.context,
        onProgress: (d, total) => o.onProgress?.({ phase: 'corpus', done: d, total, neuronsDone: 0, neuronsTotal, etaSeconds: d ? ((performance.now() - tc) / 1000) * (total - d) / d : null }),
      });
      for (const [l, perNeuron] of got) {
        await store.writeCorpusExamples(pk, l, perNeuron);
        examples.set(l, perNeuron);
      }
    }
  }

  // ---- units ----
  let neuronsDone = 0, unitsDone = 0;
  const tu = performance.now();
  o.onProgress?.({ phase: 'units', done: 0, total: todo.length, neuronsDone: 0, neuronsTotal, etaSeconds: null });
  for (const unit of todo) {
    if (o.signal?.aborted) break;
    const records = await computeUnit(model, settings, unit, pk ? examples.get(unit.layer) : null);
    await store.writeUnit(key, unit, records);
    unitsDone++;
    neuronsDone += unit.end - unit.start;
    const elapsed = (performance.now() - tu) / 1000;
    o.onProgress?.({ phase: 'units', done: unitsDone, total: todo.length, neuronsDone, neuronsTotal, etaSeconds: elapsed * (neuronsTotal - neuronsDone) / neuronsDone });
  }
  const seconds = (performance.now() - t0) / 1000;
  return {
    scan: key,
    model: o.modelName,
    units_total: units.length,
    units_done: unitsDone,
    units_skipped: units.length - todo.length,
    neurons: units.reduce((a, u) => a + u.end - u.start, 0),
    neurons_computed: neuronsDone,
    seconds,
    neurons_per_hour: neuronsDone > 0 ? (neuronsDone / seconds) * 3600 : null,
    corpus_pass: corpusState,
    stopped: unitsDone < todo.length,
  };
}
