/**
 * The built `sp` binary on bad input: every failure exits non-zero with exactly one `error:` line
 * on stderr (no stack trace, nothing on stdout) and promptly; `--json` prints one JSON line whose
 * ids / FF key and value equal the numpy golden answers of the test fixtures (packages/core/test/fixtures).
 *
 * The CLI runs from packages/cli/dist: beforeAll builds @sp/core and @sp/cli when dist is missing
 * or older than their sources (CI builds before testing anyway).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt, FIXTURES, MAIN, ROOT } from './cli-helpers.js';

const FIXTURE_NAMES = ['tiny-gpt2', 'tiny-gpt2-f16-prefixed'] as const;
const TIMEOUT_MS = 60_000;

interface Golden {
  model: { n_layer: number; n_head: number; d_model: number };
  ff_key: { layer: number; index: number; first8: number[] };
  ff_value: { layer: number; index: number; first8: number[] };
  cases: Array<{ name: string; ids: number[]; inject: unknown; greedy: number[] }>;
}
const golden = (name: string): Golden => JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'golden.json'), 'utf8'));


let tmp: string;
beforeAll(() => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-cli-'));
}, 300_000);
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function sp(...args: string[]): Run {
  const t0 = performance.now();
  // An empty weights dir: nothing may be found (or downloaded) outside the test's own files.
  const env = { ...process.env, SP_WEIGHTS_DIR: path.join(tmp, 'no-weights'), XDG_CACHE_HOME: path.join(tmp, 'cache') };
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: TIMEOUT_MS, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

/** Non-zero exit (not killed by the timeout), one `error:` line on stderr, nothing on stdout. */
function expectOneLineError(r: Run, pattern: RegExp): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect({ status: r.status, stdout: r.stdout, lines: lines.length }).toEqual({ status: expect.any(Number), stdout: '', lines: 1 });
  expect(r.status).not.toBe(0);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toContain('    at ');
  expect(r.stderr).not.toContain('internal error');
}

let dirNo = 0;
/** A copy of a fixture directory whose model.safetensors is rewritten by `mutate`. */
function brokenCopy(mutate: (file: string) => void, fixture = 'tiny-gpt2'): string {
  const dir = path.join(tmp, `broken${dirNo++}`);
  fs.mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(FIXTURES, fixture, f), path.join(dir, f));
  fs.chmodSync(path.join(dir, 'model.safetensors'), 0o644);
  mutate(path.join(dir, 'model.safetensors'));
  return dir;
}

const TINY = path.join(FIXTURES, 'tiny-gpt2');

describe('failures: one error line, non-zero exit, no stack trace', () => {
  const cases: Array<[string, () => string[], RegExp]> = [
    ['truncated model.safetensors', () => ['generate', '--model', brokenCopy((f) => fs.truncateSync(f, fs.statSync(f).size - 100)), '--ids', '1'], /truncated\?/],
    ['corrupt header', () => ['generate', '--model', brokenCopy((f) => {
      const b = fs.readFileSync(f);
      b.write('!!', 20, 'latin1');
      fs.writeFileSync(f, b);
    }), '--ids', '1'], /not valid JSON/],
    ['random bytes', () => ['neuron', '--model', brokenCopy((f) => fs.writeFileSync(f, Buffer.from(Array.from({ length: 999 }, (_, i) => (i * 97 + 13) % 256)))), '--layer', '0', '--index', '0'], /not a valid safetensors file/],
    ['empty model.safetensors', () => ['neuron', '--model', brokenCopy((f) => fs.writeFileSync(f, '')), '--layer', '0', '--index', '0'], /file is empty/],
    ['model.safetensors missing', () => ['generate', '--model', brokenCopy((f) => fs.rmSync(f)), '--ids', '1'], /has no model\.safetensors/],
    ['missing directory (generate)', () => ['generate', '--model', path.join(tmp, 'nope'), '--ids', '1'], /unknown model .*nope/],
    ['missing directory (neuron)', () => ['neuron', '--model', path.join(tmp, 'nope'), '--layer', '0', '--index', '0'], /unknown model .*nope/],
    ['layer out of range', () => ['neuron', '--model', TINY, '--layer', '2', '--index', '0'], /layer 2 is out of range \[0, 1\]/],
    ['neuron index out of range', () => ['neuron', '--model', TINY, '--layer', '1', '--index', '128'], /neuron index 128 is out of range \[0, 127\]/],
    ['negative layer', () => ['neuron', '--model', TINY, '--layer=-1', '--index', '0'], /--layer must be an integer ≥ 0/],
    ['non-numeric index', () => ['neuron', '--model', TINY, '--layer', '0', '--index', '3x'], /--index must be an integer/],
    ['token id = vocab size', () => ['generate', '--model', TINY, '--ids', '464,50257'], /token id 50257 is out of range \[0, 50256\]/],
    ['negative token id', () => ['generate', '--model', TINY, '--ids=-5'], /token id -5 is out of range/],
    ['malformed ids', () => ['generate', '--model', TINY, '--ids', '1,x'], /"x" is not an integer token id/],
    ['prompt ids longer than n_ctx', () => ['generate', '--model', TINY, '--ids', Array(65).fill('11').join(',')], /65 tokens, longer than the model's context of 64/],
    ['prompt text longer than n_ctx', () => ['generate', '--model', TINY, '--prompt', 'hello '.repeat(80)], /longer than the model's context of 64/],
    ['prompt + new tokens beyond n_ctx', () => ['generate', '--model', TINY, '--ids', Array(60).fill('11').join(','), '--max-new-tokens', '20'], /exceeds the model's context of 64/],
    ['negative temperature', () => ['generate', '--model', TINY, '--ids', '1', '--sample', '--temperature', '-1'], /temperature must be > 0/],
    ['non-numeric temperature', () => ['generate', '--model', TINY, '--ids', '1', '--sample', '--temperature', 'hot'], /--temperature must be a number/],
    ['negative max-new-tokens', () => ['generate', '--model', TINY, '--ids', '1', '--max-new-tokens=-3'], /--max-new-tokens must be an integer ≥ 0/],
    ['empty ids', () => ['generate', '--model', TINY, '--ids', ' , '], /has no token ids/],
    ['download of an unknown model', () => ['download', 'gpt5'], /unknown model "gpt5"/],
    ['unknown option', () => ['generate', '--model', TINY, '--ids', '1', '--bogus'], /unknown option '--bogus'/],
    ['unknown command', () => ['frobnicate'], /unknown command 'frobnicate'/],
    ['missing required option', () => ['neuron', '--model', TINY, '--layer', '0'], /required option '--index <J>' not specified/],
    ['zero threads', () => ['--threads', '0', 'generate', '--model', TINY, '--ids', '1'], /--threads must be an integer from 1 to 64 \(got "0"\)/],
    ['non-numeric threads', () => ['generate', '--threads', 'many', '--model', TINY, '--ids', '1'], /--threads must be an integer from 1 to 64 \(got "many"\)/],
  ];

  test.each(cases)('%s', (_label, args, pattern) => {
    const r = sp(...args());
    expectOneLineError(r, pattern);
    expect(r.ms).toBeLessThan(TIMEOUT_MS);
  });
});

describe.each(FIXTURE_NAMES)('--json output (%s)', (name) => {
  const g = golden(name);
  const dir = path.join(FIXTURES, name);

  test('sp neuron --json: FF key/value equal golden, length d_model', () => {
    expect(g.ff_key.layer).toBe(g.ff_value.layer);
    expect(g.ff_key.index).toBe(g.ff_value.index);
    const r = sp('neuron', '--model', dir, '--layer', String(g.ff_key.layer), '--index', String(g.ff_key.index), '--json');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const lines = r.stdout.split('\n');
    expect(lines).toHaveLength(2); // one line + final newline
    expect(lines[1]).toBe('');
    const out = JSON.parse(lines[0]);
    expect(out).toMatchObject({ layer: g.ff_key.layer, index: g.ff_key.index });
    expect(out.key).toHaveLength(g.model.d_model);
    expect(out.value).toHaveLength(g.model.d_model);
    g.ff_key.first8.forEach((x, i) => expect(out.key[i]).toBeCloseTo(x, 6));
    g.ff_value.first8.forEach((x, i) => expect(out.value[i]).toBeCloseTo(x, 6));
  });

  const plain = g.cases.filter((c) => !c.inject).slice(0, 2);
  test.each(plain.map((c) => [c.name, c] as const))('sp generate --json (%s): one JSON line, ids = golden greedy', (_n, c) => {
    const r = sp('generate', '--model', dir, '--ids', c.ids.join(','), '--max-new-tokens', String(c.greedy.length), '--json');
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
    const lines = r.stdout.split('\n');
    expect(lines).toHaveLength(2);
    const out = JSON.parse(lines[0]);
    expect(out.ids).toEqual(c.greedy);
    expect(typeof out.text).toBe('string');
    expect(Object.keys(out.timing).sort()).toEqual(['decode_ms', 'load_ms', 'prefill_ms', 'tokens_per_s']);
    for (const v of Object.values(out.timing)) expect(v).toEqual(expect.any(Number));
    expect(out.timing.load_ms).toBeGreaterThan(0);
    expect(out.timing.tokens_per_s).toBeGreaterThan(0);
  });
});

test('--threads N and --engine: same greedy ids, and --verbose names the matrix engine and its threads', () => {
  const g = golden('tiny-gpt2').cases.filter((c) => !c.inject)[0];
  const settings = [['1', 'ort'], ['3', 'wasm']];
  const runs = settings.map(([t, e]) => sp('--threads', t, '--engine', e, '--verbose', 'generate', '--model', TINY, '--ids', g.ids.join(','), '--max-new-tokens', String(g.greedy.length), '--json'));
  for (const [i, r] of runs.entries()) {
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).ids).toEqual(g.greedy);
    expect(r.stderr).toMatch(new RegExp(`backend (wasm|cpu) \\(engine ${settings[i][1]}, ${settings[i][0]} thread\\(s\\)\\)`));
  }
});

test('human output exits promptly with status 0 (no lingering worker threads)', () => {
  const r = sp('generate', '--model', TINY, '--ids', '464,3139', '--max-new-tokens', '3');
  expect(r.status).toBe(0);
  expect(r.stdout.length).toBeGreaterThan(0);
  expect(r.stderr).toMatch(/^\[3 tokens, prefill [\d.]+ ms, [\d.]+ tokens\/s\]\n$/);
  expect(r.ms).toBeLessThan(30_000);
});
