/** Helpers shared by the CLI commands. Commands only call @sp/core's public API. */
import type { GPT2, NeuronIntervention } from '@sp/core';
import { SpError } from '@sp/core/light';
import { Option, type Command } from 'commander';

export interface GlobalOptions {
  verbose?: boolean;
  backend?: string;
  allowNonfinite?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** Diagnostics go to stderr so `--json` output on stdout stays clean. */
export function info(cmd: Command, msg: string): void {
  if (globals(cmd).verbose) process.stderr.write(`[sp] ${msg}\n`);
}

/** `--model DIR|NAME` (default gpt2) → loaded model; says which backend in --verbose. */
export async function loadModel(cmd: Command, model: string | undefined): Promise<{ model: GPT2; loadMs: number }> {
  const t0 = performance.now();
  const { backendName, gpt2 } = await import('@sp/core'); // lazily: commands that only read files skip TensorFlow.js
  const { engineInfo, gemmThreads } = await import('@sp/core/internals');
  const m = await gpt2(model ?? 'gpt2', { backend: globals(cmd).backend, progress: process.stderr.isTTY, allowNonfinite: globals(cmd).allowNonfinite });
  const loadMs = performance.now() - t0;
  const engine = engineInfo(m).engine;
  const matmul = engine === 'tfjs' ? 'engine tfjs' : `engine ${engine}, ${gemmThreads()} thread(s)`;
  info(cmd, `backend ${backendName()} (${matmul}); loaded ${model ?? 'gpt2'} (${m.config.nLayer} layers, d_model ${m.config.dModel}) in ${loadMs.toFixed(0)} ms`);
  return { model: m, loadMs };
}

/** "464,3139" → [464, 3139]. */
export function parseIds(s: string): number[] {
  const parts = s.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (parts.length === 0) throw new SpError('BAD_INPUT', `--ids "${s}" has no token ids`);
  return parts.map((p) => {
    if (!/^-?\d+$/.test(p)) throw new SpError('BAD_INPUT', `--ids: "${p}" is not an integer token id`);
    return Number(p);
  });
}

export function parseIntOpt(name: string, min = 0, max?: number): (v: string) => number {
  return (v) => {
    if (!/^-?\d+$/.test(v.trim()) || Number(v) < min || (max !== undefined && Number(v) > max)) {
      throw new SpError('BAD_INPUT', `${name} must be an integer ${max === undefined ? `≥ ${min}` : `from ${min} to ${max}`} (got "${v}")`);
    }
    return Number(v);
  };
}

/** `--seed`: sampling's generator has 32 bits of state, so seeds are 0 … 2³² − 1 (larger ones are refused, not truncated). */
export const parseSeed = parseIntOpt('--seed', 0, 2 ** 32 - 1);

/** HF warns when sampling options are given to greedy decoding; so do we (one line, on stderr). */
export function warnIgnoredSampling(o: { temperature?: number; topK?: number; topP?: number }, why: string): void {
  const given = [['--temperature', o.temperature], ['--top-k', o.topK], ['--top-p', o.topP]].filter(([, v]) => v !== undefined).map(([f]) => f);
  if (given.length) process.stderr.write(`warning: ${given.join(', ')} ${given.length > 1 ? 'have' : 'has'} no effect ${why}\n`);
}

export function parseFloatOpt(name: string): (v: string) => number {
  return (v) => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new SpError('BAD_INPUT', `${name} must be a number (got "${v}")`);
    return x;
  };
}

/** Token ids from `--ids` or `--prompt` (exactly one). */
export function inputIds(model: GPT2, o: { ids?: string; prompt?: string }): number[] {
  if (o.ids !== undefined && o.prompt !== undefined) throw new SpError('BAD_INPUT', 'give either --ids or --prompt, not both');
  if (o.ids !== undefined) return model.toTokens(parseIds(o.ids)).ids[0];
  if (o.prompt !== undefined) return model.toTokens(o.prompt).ids[0];
  throw new SpError('BAD_INPUT', 'give --ids or --prompt');
}

export function printJson(x: unknown): void {
  process.stdout.write(JSON.stringify(x) + '\n');
}

/**
 * `--set-neuron L,J=V` (coefficient of FF neuron J of block L set to V at every position; `=0`
 * switches it off) or `L,J=xS` (multiplied by S); repeatable, in order. Ranges are checked by the
 * library against the model.
 */
export function parseSetNeuron(spec: string, prev: NeuronIntervention[] = []): NeuronIntervention[] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*=\s*(x|\*)?\s*(\S+)\s*$/i.exec(spec);
  const x = m ? Number(m[4]) : NaN;
  if (!m || m[4].trim() === '' || !Number.isFinite(x)) {
    throw new SpError('BAD_INPUT', `--set-neuron "${spec}": use LAYER,INDEX=VALUE (e.g. 10,8=0 switches neuron 8 of layer 10 off) or LAYER,INDEX=xSCALE (e.g. 3,5=x2)`);
  }
  const [layer, index] = [Number(m[1]), Number(m[2])];
  return [...prev, m[3] ? { layer, index, scale: x } : { layer, index, value: x }];
}

/** The repeatable `--set-neuron` option, for `.addOption(setNeuronOption())`: collected into `setNeuron` (undefined when absent). */
export function setNeuronOption(): Option {
  return new Option('--set-neuron <L,J=V>', 'intervene on FF neuron J of layer L at every position: =V sets its coefficient (=0 turns it off), =xS scales it; repeatable')
    .argParser((v: string, prev?: NeuronIntervention[]) => parseSetNeuron(v, prev));
}
