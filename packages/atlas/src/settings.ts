/**
 * Scan settings: defaults, validation, the canonical JSON their digest is taken of, and the digests
 * that key the store (model, settings, corpus pass). Everything that changes a result is in the
 * settings, so a different setting is a different key and never overwrites earlier rows.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SpError, assertSeed, loadPrompt, parseTemplate, SPEAKING_PROBE_DEFAULTS } from '@sp/core';
import type { NeuronKind, ScanSettings } from './types.js';

/** The atlas defaults: the issue's (30 new tokens, seed 1, 50 projection tokens, 10 examples, windows of 64, ±10 tokens) and the article's sampling settings. */
export const SCAN_DEFAULTS: Readonly<Omit<ScanSettings, 'prompt'>> = Object.freeze({
  kind: 'key' as NeuronKind,
  promptName: 'term-means',
  samples: 3,
  maxNewTokens: 30,
  seed: 1,
  temperature: SPEAKING_PROBE_DEFAULTS.temperature,
  repetitionPenalty: SPEAKING_PROBE_DEFAULTS.repetitionPenalty,
  topK: SPEAKING_PROBE_DEFAULTS.topK,
  topP: SPEAKING_PROBE_DEFAULTS.topP,
  projectionTop: 50,
  corpus: null,
  topExamples: 10,
  window: 64,
  context: 10,
  blockSize: 64,
});

export type ScanSettingsInput = Partial<ScanSettings> & { promptDirs?: string[] };

const bad = (m: string) => new SpError('BAD_INPUT', m);

function checkInt(name: string, v: number, lo: number, hi = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw bad(`${name} must be an integer from ${lo}${hi === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${hi}`} (got ${v})`);
}

/**
 * Defaults filled in, the prompt text read from the library when only its name is given, and every
 * field checked (one-line SpErrors). `prompt` given with a promptName is taken as that prompt's text.
 */
export function resolveSettings(input: ScanSettingsInput = {}): ScanSettings {
  const { promptDirs, ...given } = input;
  const promptName = given.promptName ?? SCAN_DEFAULTS.promptName;
  const prompt = given.prompt ?? loadPrompt(promptName, promptDirs).template;
  const s: ScanSettings = { ...SCAN_DEFAULTS, ...stripUndefined(given), promptName, prompt };
  validateSettings(s);
  return s;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Checks a complete ScanSettings (model-independent parts; the scan checks the window against n_ctx). */
export function validateSettings(s: ScanSettings): void {
  if (s.kind !== 'key' && s.kind !== 'value') throw bad(`kind must be key or value (got ${String(s.kind)})`);
  if (typeof s.promptName !== 'string' || !s.promptName) throw bad('promptName must be a non-empty string');
  checkPrompt(s.prompt);
  checkInt('samples', s.samples, 0, 1000);
  checkInt('maxNewTokens', s.maxNewTokens, 1, 10_000);
  assertSeed(s.seed);
  if (!(s.temperature > 0) || !Number.isFinite(s.temperature)) throw bad(`temperature must be > 0 (got ${s.temperature})`);
  if (!(s.repetitionPenalty > 0) || !Number.isFinite(s.repetitionPenalty)) throw bad(`repetitionPenalty must be > 0 (got ${s.repetitionPenalty})`);
  checkInt('topK', s.topK, 0);
  if (!(s.topP > 0 && s.topP <= 1)) throw bad(`topP must be in (0, 1] (got ${s.topP})`);
  checkInt('projectionTop', s.projectionTop, 1, 50257);
  if (s.corpus !== null && (typeof s.corpus !== 'object' || !/^[0-9a-f]{64}$/.test(s.corpus.digest) || typeof s.corpus.name !== 'string')) {
    throw bad('corpus must be null or { digest: sha256 hex, name }');
  }
  checkInt('topExamples', s.topExamples, 1, 10_000);
  checkInt('window', s.window, 1, 1_000_000);
  checkInt('context', s.context, 0, 1000);
  checkInt('blockSize', s.blockSize, 1, 1_000_000);
}

/** The atlas prompt holds the neuron as `<neuron>` (one or more times) and no other virtual tokens. */
export function checkPrompt(prompt: string): void {
  if (typeof prompt !== 'string') throw bad('the prompt must be a string');
  const tags = parseTemplate(prompt).flatMap((p) => ('tag' in p && p.tag ? [p.tag] : []));
  if (!tags.some((t) => t.kind === 'neuron' && t.neuron === 0)) throw bad(`the atlas prompt needs a <neuron> tag (got ${JSON.stringify(prompt)})`);
  const other = tags.find((t) => !(t.kind === 'neuron' && t.neuron === 0));
  if (other) throw bad(`the atlas prompt may use only <neuron> (got ${other.tag})`);
}

/** JSON with object keys sorted at every level: equal values give equal text (and digests). */
export function canonicalJson(x: unknown): string {
  return JSON.stringify(sortKeys(x));
}

function sortKeys(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(sortKeys);
  if (x && typeof x === 'object') {
    return Object.fromEntries(Object.keys(x as object).sort().filter((k) => (x as Record<string, unknown>)[k] !== undefined).map((k) => [k, sortKeys((x as Record<string, unknown>)[k])]));
  }
  return x;
}

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** sha256 of the settings' canonical JSON (every field: the prompt text, not only its name). */
export function settingsDigest(s: ScanSettings): string {
  return sha256(canonicalJson(s));
}

/** The corpus pass's own digest: only what changes the examples (window, top-k, context). */
export function passDigest(s: Pick<ScanSettings, 'window' | 'topExamples' | 'context'>): string {
  return sha256(canonicalJson({ window: s.window, topExamples: s.topExamples, context: s.context }));
}

/** sha256 of a file's bytes, streamed. */
export async function fileDigest(file: string, hash = createHash('sha256')): Promise<string> {
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The model's identity: sha256 over config.json and the safetensors files (and their index), in
 * name order, each as its name, byte length and bytes — streamed, so gpt2-xl is never in memory.
 */
export async function modelDigest(dir: string): Promise<string> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new SpError('NOT_FOUND', `model directory ${dir} not found`);
  const files = fs.readdirSync(dir).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f === 'model.safetensors.index.json').sort();
  if (!files.some((f) => f.endsWith('.safetensors'))) throw new SpError('NOT_FOUND', `no .safetensors file in ${dir}`);
  const hash = createHash('sha256');
  for (const f of files) {
    const p = path.join(dir, f);
    hash.update(`${f}\0${fs.statSync(p).size}\0`);
    for await (const chunk of fs.createReadStream(p)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * `0-11`, `3,5,7-9`, `7` → sorted distinct integers in [lo, hiExclusive). `what` names the option
 * in errors ("--layers"). An empty or reversed range, a value out of range or junk is an error.
 */
export function parseRange(spec: string, lo: number, hiExclusive: number, what: string): number[] {
  const out = new Set<number>();
  const parts = String(spec).split(',').map((p) => p.trim());
  if (parts.every((p) => p === '')) throw bad(`${what} is empty`);
  for (const p of parts) {
    const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(p);
    if (!m) throw bad(`${what}: "${p}" is not an integer or a range A-B (e.g. 0-11 or 3,5,7-9)`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw bad(`${what}: the range ${p} is empty`);
    for (const v of [a, b]) {
      if (v < lo || v >= hiExclusive) throw new SpError('OUT_OF_RANGE', `${what}: ${v} is out of range [${lo}, ${hiExclusive - 1}]`);
    }
    for (let v = a; v <= b; v++) out.add(v);
  }
  return [...out].sort((x, y) => x - y);
}

/** A sorted list of neuron indices as [start, end) runs: [0,1,2,5] → [{0,3},{5,6}]. */
export function toRuns(sorted: number[]): Array<{ start: number; end: number }> {
  const runs: Array<{ start: number; end: number }> = [];
  for (const v of sorted) {
    const last = runs.at(-1);
    if (last && last.end === v) last.end++;
    else runs.push({ start: v, end: v + 1 });
  }
  return runs;
}
