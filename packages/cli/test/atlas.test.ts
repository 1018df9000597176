/**
 * `sp scan` and `sp atlas show|search|export` as real processes on the tiny random fixture:
 * a scan SIGKILLed mid-layer and started again ends with exactly an uninterrupted scan's store;
 * other settings add rows; show/search/export; one-line errors.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parquetReadObjects } from 'hyparquet';
import { openStore, type AtlasStore, type NeuronRecord } from '@sp/atlas';
import { fixtureDir, tmpDir } from '../../core/test/helpers/fixtures.js';
import { ensureBuilt, expectOneLineError, MAIN, ROOT, sp } from './cli-helpers.js';

const model = fixtureDir('tiny-gpt2'); // 2 layers, d_mlp 128
const dir = tmpDir('sp-atlas-cli-');
const corpus = path.join(dir, 'corpus.txt');
fs.writeFileSync(corpus, [
  'Tokyo is the capital of Japan, and Kyoto was the old capital.',
  'The quick brown fox jumps over the lazy dog.',
  '',
  'Speaking probes ask the model to describe a neuron in words.',
].join('\n') + '\n');
const SCAN = ['scan', '--model', model, '--layers', '0-1', '--samples', '2', '--max-new-tokens', '4', '--corpus', corpus, '--window', '12', '--top-examples', '3', '--block-size', '4'];

async function collect(store: AtlasStore): Promise<NeuronRecord[]> {
  const out: NeuronRecord[] = [];
  for await (const r of store.allNeurons()) out.push(r);
  return out;
}

async function storeRows(file: string) {
  const s = await openStore(file, { create: false });
  try {
    const scans = await s.scans();
    const units = scans.length ? await s.doneUnits(scans[0]) : [];
    return { scans, units, neurons: await collect(s) };
  } finally {
    await s.close();
  }
}

beforeAll(() => ensureBuilt());

describe('sp scan: resumable, exact', () => {
  const full = path.join(dir, 'full.sqlite');
  const resumed = path.join(dir, 'resumed.sqlite');

  test('uninterrupted scan: every neuron once, every unit done, --json summary', () => {
    const r = sp([...SCAN, '--store', full, '--json']);
    expect(r.stderr).toMatch(/^scan [0-9a-f]{12}: 256 neurons in 64 units computed, 0 units already done/m);
    expect(r.status).toBe(0);
    const sum = JSON.parse(r.stdout);
    expect(sum).toMatchObject({ units_total: 64, units_done: 64, units_skipped: 0, neurons: 256, neurons_computed: 256, corpus_pass: 'computed', stopped: false });
    expect(sum.neurons_per_hour).toBeGreaterThan(0);
    const again = JSON.parse(sp([...SCAN, '--store', full, '--json']).stdout);
    expect(again).toMatchObject({ units_done: 0, units_skipped: 64, neurons_computed: 0 });
  });

  test('SIGKILL mid-layer, then the same command: the store equals the uninterrupted one', async () => {
    const child = spawn(process.execPath, [MAIN, ...SCAN, '--store', resumed], { cwd: ROOT, env: { ...process.env, SP_BACKEND: 'wasm' }, stdio: 'ignore' });
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    let killedAt = -1;
    for (let i = 0; i < 6000 && killedAt < 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (!fs.existsSync(resumed)) continue;
      const { units } = await storeRows(resumed).catch(() => ({ units: [] as unknown[] }));
      if (units.length >= 1) {
        child.kill('SIGKILL');
        killedAt = units.length;
      }
    }
    await exited;
    const mid = await storeRows(resumed);
    expect(killedAt).toBeGreaterThanOrEqual(1);
    expect(mid.units.length).toBeLessThan(32); // killed inside layer 0
    expect(mid.neurons.length).toBe(mid.units.length * 4); // only whole units: nothing of the unit in flight
    const r = JSON.parse(sp([...SCAN, '--store', resumed, '--json']).stdout);
    expect(r.units_skipped).toBe(mid.units.length);
    expect(r.units_done).toBe(64 - mid.units.length);
    const a = await storeRows(full), b = await storeRows(resumed);
    expect(b.units).toEqual(a.units);
    expect(b.neurons).toHaveLength(256);
    expect(new Set(b.neurons.map((n) => `${n.layer},${n.index},${n.kind}`)).size).toBe(256); // no duplicates
    expect(b.neurons).toEqual(a.neurons);
    expect(b.neurons.every((n) => n.examples.length === 3 && n.samples.length === 2)).toBe(true);
  });

  test('other settings write new rows and leave the first ones unchanged', async () => {
    const before = await storeRows(full);
    const r = sp([...SCAN, '--store', full, '--seed', '2', '--neurons', '0-3', '--json']);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ units_done: 2, neurons_computed: 8, corpus_pass: 'cached' });
    const s = await openStore(full, { create: false });
    try {
      const scans = await s.scans();
      expect(scans).toHaveLength(2);
      const first: NeuronRecord[] = [];
      for await (const n of s.allNeurons(before.scans[0])) first.push(n);
      expect(first).toEqual(before.neurons);
      const second: NeuronRecord[] = [];
      for await (const n of s.allNeurons(scans[1])) second.push(n);
      expect(second.map((n) => [n.layer, n.index])).toEqual([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1], [1, 2], [1, 3]]);
      expect(second[0].projection).toEqual(first[0].projection); // seed changes the samples, not the projection
      expect(second.map((n) => n.samples)).not.toEqual(first.filter((n) => n.index < 4).map((n) => n.samples));
    } finally {
      await s.close();
    }
  });

  test('atlas show --json: the issue\'s shape; search best first; export jsonl == parquet', async () => {
    const one = path.join(dir, 'one.sqlite');
    expect(sp([...SCAN, '--store', one]).status).toBe(0);
    const show = sp(['atlas', 'show', '--store', one, '--neuron', '1,5', '--json']);
    expect(show.status).toBe(0);
    const rec = JSON.parse(show.stdout) as NeuronRecord;
    expect(Object.keys(rec)).toEqual(['layer', 'index', 'kind', 'projection', 'samples', 'examples', 'scores']);
    expect([rec.layer, rec.index, rec.kind]).toEqual([1, 5, 'key']);
    expect(rec.projection.top).toHaveLength(50);
    expect(Object.keys(rec.projection.top[0])).toEqual(['id', 'token', 'score']);
    expect(Object.keys(rec.samples[0])).toEqual(['text', 'ids']);
    expect(Object.keys(rec.examples[0])).toEqual(expect.arrayContaining(['doc', 'position', 'activation', 'context']));
    expect(Object.keys(rec.scores)).toEqual(['example_projection_overlap', 'probe_projection_overlap']);
    const text = sp(['atlas', 'show', '--store', one, '--neuron', '1,5']);
    expect(text.stdout).toContain('key L1 #5');

    // Search for a token that is in some top list: hits ordered by rank, then score descending.
    const token = rec.projection.top[3].token;
    const search = sp(['atlas', 'search', '--store', one, '--token', token, '--json', '--limit', '1000']);
    const res = JSON.parse(search.stdout) as { total: number; hits: Array<{ layer: number; index: number; rank: number; score: number }> };
    expect(res.hits.some((h) => h.layer === 1 && h.index === 5 && h.rank === 3)).toBe(true);
    for (let i = 1; i < res.hits.length; i++) {
      const [p, h] = [res.hits[i - 1], res.hits[i]];
      expect(p.rank < h.rank || (p.rank === h.rank && p.score >= h.score)).toBe(true);
    }
    const s = await openStore(one, { create: false });
    const all = await collect(s);
    await s.close();
    const expected = all.flatMap((n) => n.projection.top.flatMap((t, rank) => (t.token === token ? [{ layer: n.layer, index: n.index, rank, score: t.score }] : [])));
    expect(res.total).toBe(expected.length);
    expect(res.hits.map((h) => ({ layer: h.layer, index: h.index, rank: h.rank, score: h.score })).sort((a, b) => a.layer - b.layer || a.index - b.index))
      .toEqual(expected.sort((a, b) => a.layer - b.layer || a.index - b.index));

    // Export: stdout jsonl == file jsonl == parquet read back.
    // (spawnSync's default 1 MiB buffer is too small for 256 neurons' JSON)
    const jsonlOut = spawnSync(process.execPath, [MAIN, 'atlas', 'export', '--store', one], { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
    expect(jsonlOut.status).toBe(0);
    const rows = jsonlOut.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(256);
    expect(rows.map(({ model_digest, settings_digest, ...r }) => r)).toEqual(all);
    const jf = path.join(dir, 'a.jsonl'), pf = path.join(dir, 'a.parquet');
    expect(sp(['atlas', 'export', '--store', one, '--out', jf]).status).toBe(0);
    expect(fs.readFileSync(jf, 'utf8')).toBe(jsonlOut.stdout);
    const pq = sp(['atlas', 'export', '--store', one, '--format', 'parquet', '--out', pf]);
    expect(pq.stderr).toBe(`wrote 256 neurons to ${pf}\n`);
    const buf = fs.readFileSync(pf);
    const back = await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) });
    expect(back.map((r) => ({
      model_digest: r.model_digest, settings_digest: r.settings_digest, layer: r.layer, index: r.index, kind: r.kind,
      projection: r.projection, samples: r.samples, examples: r.examples,
      scores: { example_projection_overlap: r.example_projection_overlap ?? null, probe_projection_overlap: r.probe_projection_overlap ?? null },
    }))).toEqual(rows);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('one-line errors', () => {
  const store = path.join(dir, 'err.sqlite');
  test.each([
    [['--layers', '0-2'], '--layers: 2 is out of range [0, 1]'],
    [['--layers', '1-0'], 'the range 1-0 is empty'],
    [['--layers', ''], '--layers is empty'],
    [['--neurons', '0-128'], '--neurons: 128 is out of range [0, 127]'],
    [['--neurons', 'x'], '"x" is not an integer or a range'],
    [['--prompt-name', 'nope'], 'no prompt named "nope"'],
    [['--corpus', path.join(dir, 'missing.txt')], 'not found'],
    [['--kind', 'both'], '--kind must be key or value'],
    [['--window', '64', '--corpus', corpus], "exceeds the model's context of 64"],
  ])('sp scan %j', (extra, msg) => {
    expectOneLineError(sp(['scan', '--model', model, '--store', store, ...extra]), msg);
    expect(fs.existsSync(store)).toBe(false); // a mistyped command leaves no empty store behind
  });
  test('store and corpus problems', () => {
    expectOneLineError(sp(['scan', '--model', model, '--store', path.join(dir, 'no', 'x.sqlite')]), 'store folder');
    expectOneLineError(sp(['scan', '--model', model]), '--store <path> is required');
    const bad = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(bad, '{"text":"a"}\n{"nope":1}\n');
    expectOneLineError(sp(['scan', '--model', model, '--store', store, '--corpus', bad]), 'line 2: expected an object with a string "text" field');
    expectOneLineError(sp(['atlas', 'show', '--store', path.join(dir, 'none.sqlite'), '--neuron', '0,0']), 'no atlas store at');
    expect(fs.existsSync(path.join(dir, 'none.sqlite'))).toBe(false);
    expectOneLineError(sp(['atlas', 'show', '--store', path.join(dir, 'full.sqlite'), '--neuron', '0,999']), 'neuron 0,999 is not in');
    expectOneLineError(sp(['atlas', 'show', '--store', path.join(dir, 'full.sqlite'), '--neuron', 'x']), '--neuron must be LAYER,INDEX');
    expectOneLineError(sp(['atlas', 'export', '--store', path.join(dir, 'full.sqlite')]), 'the store holds 2 scans: pick one with --scan');
    expectOneLineError(sp(['atlas', 'export', '--store', path.join(dir, 'one.sqlite'), '--format', 'csv']), '--format must be jsonl or parquet');
    expectOneLineError(sp(['atlas', 'export', '--store', path.join(dir, 'one.sqlite'), '--format', 'parquet']), 'needs --out');
    expectOneLineError(sp(['atlas', 'search', '--store', path.join(dir, 'one.sqlite')]), 'give --token or --text');
  });
});
