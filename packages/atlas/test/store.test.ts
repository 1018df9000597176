/** The SQLite store: round trip, idempotent units, keys kept apart, search order, the corpus cache, bad paths. */
import fs from 'node:fs';
import path from 'node:path';
import { openStore, resolveSettings, settingsDigest, sqliteDriver, type AtlasStore, type NeuronRecord, type ProjToken } from '@sp/atlas';
import { tmpDir } from '../../core/test/helpers/fixtures.js';

const tok = (id: number, token: string, score: number): ProjToken => ({ id, token, score });
function record(layer: number, index: number, top: ProjToken[], kind: 'key' | 'value' = 'key'): NeuronRecord {
  return {
    layer, index, kind,
    projection: { top, bottom: [tok(9, ' z', -1.25)], top_normalized: top.slice(0, 1), bottom_normalized: [] },
    samples: [{ text: ' means a country', ids: [1, 2, 3] }],
    examples: [{ doc: 2, position: 7, activation: 0.1 + 0.2, context: ['a', ' Japan', ' b'], center: 1, token_id: 5 }],
    scores: { example_projection_overlap: 1 / 3, probe_projection_overlap: null },
  };
}

describe('SqliteStore', () => {
  const dir = tmpDir('sp-atlas-store-');
  let store: AtlasStore;
  const settings = resolveSettings({ samples: 1 });
  const key = { modelDigest: 'm'.repeat(64), settingsDigest: settingsDigest(settings) };
  const f32 = Math.fround(0.123456789);
  beforeAll(async () => {
    store = await openStore(path.join(dir, 'atlas.sqlite'));
  });
  afterAll(() => store.close());

  test(`round trip, float32 values exact (driver ${process.versions.node})`, async () => {
    expect(['node:sqlite', 'better-sqlite3']).toContain(sqliteDriver);
    const info = await store.openScan({ ...key, model: 'tiny', settings, layers: [0, 1], neurons: { start: 0, end: 4 }, unitsTotal: 2 });
    expect(info).toMatchObject({ ...key, unitsDone: 0, neuronsDone: 0, unitsTotal: 2, settings });
    const again = await store.openScan({ ...key, model: 'other', settings, layers: [0], neurons: { start: 0, end: 1 }, unitsTotal: 9 });
    expect(again).toEqual(info); // idempotent: the first record stays
    const recs = [record(0, 0, [tok(5, ' Japan', f32), tok(6, ' Tokyo', 0.1)]), record(0, 1, [tok(6, ' Tokyo', 0.7), tok(5, ' Japan', 0.5)])];
    await store.writeUnit(key, { layer: 0, start: 0, end: 2 }, recs);
    await store.writeUnit(key, { layer: 0, start: 0, end: 2 }, recs); // a second write is a no-op
    expect(await store.doneUnits(key)).toEqual([{ layer: 0, start: 0, end: 2 }]);
    const got = await store.neuron(0, 0);
    expect(got).toEqual(recs[0]);
    expect(got!.projection.top[0].score).toBe(f32);
    const all: NeuronRecord[] = [];
    for await (const r of store.allNeurons(key)) all.push(r);
    expect(all).toEqual(recs);
    expect((await store.scans())[0]).toMatchObject({ unitsDone: 1, neuronsDone: 2 });
    expect(await store.neuron(0, 3)).toBeNull();
    expect(await store.neuron(0, 0, { kind: 'value' })).toBeNull();
  });

  test('search by token: lowest rank first, then highest score; filters; text', async () => {
    await store.writeUnit(key, { layer: 1, start: 0, end: 2 }, [record(1, 0, [tok(5, ' Japan', 2), tok(7, 'x', 1)]), record(1, 1, [tok(7, 'x', 3), tok(5, ' Japan', 0.9)])]);
    const r = await store.search({ token: ' Japan' });
    expect(r.total).toBe(4);
    expect(r.hits.map((h) => [h.layer, h.index, h.rank, h.score])).toEqual([[1, 0, 0, 2], [0, 0, 0, f32], [1, 1, 1, 0.9], [0, 1, 1, 0.5]]);
    expect(r.hits[0].top).toEqual([' Japan', 'x']);
    expect((await store.search({ token: ' Japan', layer: 0, limit: 1, offset: 1 })).hits.map((h) => h.index)).toEqual([1]);
    expect((await store.search({ token: ' Nothing' })).total).toBe(0);
    expect((await store.search({ text: 'TOKYO' })).hits.map((h) => [h.layer, h.index])).toEqual([[0, 0], [0, 1]]);
    expect((await store.search({ text: 'a Country', layer: 1 })).hits.map((h) => [h.layer, h.index])).toEqual([[1, 0], [1, 1]]); // the sample texts
    expect((await store.search({ text: '100%' })).total).toBe(0); // LIKE wildcards are literal
  });

  test('every token string is searchable exactly: a lone byte (U+DC00+byte), NUL, quotes and backslashes', async () => {
    const odd = [tok(200, '\udce3', 3), tok(0, '\u0000', 2), tok(1, ' "q\\', 1)];
    const k2 = { ...key, settingsDigest: 'o'.repeat(64) };
    await store.writeUnit(k2, { layer: 2, start: 0, end: 1 }, [record(2, 0, odd)]);
    for (const [rank, t] of odd.entries()) {
      const r = await store.search({ ...k2, token: t.token });
      expect(r.hits.map((h) => [h.layer, h.index, h.rank])).toEqual([[2, 0, rank]]);
      expect(r.hits[0].top).toEqual(odd.map((o) => o.token));
    }
    expect((await store.search({ ...k2, token: '\udce4' })).total).toBe(0); // another byte is another token
    expect((await store.search({ ...k2, text: '"Q' })).total).toBe(1); // free text reaches tokens with quotes
    expect((await store.neuron(2, 0, k2))!.projection.top).toEqual(odd);
  });

  test('another settings digest writes new rows and leaves the first ones unchanged', async () => {
    const other = { ...key, settingsDigest: settingsDigest(resolveSettings({ samples: 2 })) };
    await store.writeUnit(other, { layer: 0, start: 0, end: 1 }, [record(0, 0, [tok(1, 'a', 1)])]);
    const first: NeuronRecord[] = [];
    for await (const r of store.allNeurons(key)) first.push(r);
    expect(first).toHaveLength(4);
    expect(first[0].projection.top[0].token).toBe(' Japan');
    expect((await store.neuron(0, 0, other))!.projection.top[0].token).toBe('a');
  });

  test('the corpus pass cache', async () => {
    const pk = { modelDigest: key.modelDigest, corpusDigest: 'c'.repeat(64), passDigest: 'p'.repeat(64) };
    expect(await store.corpusExamples(pk, 0)).toBeNull();
    const ex = [[record(0, 0, []).examples[0]], []];
    await store.writeCorpusExamples(pk, 0, ex);
    await store.writeCorpusExamples(pk, 0, [[], []]); // no-op
    expect(await store.corpusExamples(pk, 0)).toEqual(ex);
  });

  test('bad store paths are one-line errors', async () => {
    await expect(openStore(path.join(dir, 'no', 'such', 'a.sqlite'))).rejects.toThrow('store folder');
    await expect(openStore(path.join(dir, 'missing.sqlite'), { create: false })).rejects.toThrow('no atlas store at');
    fs.writeFileSync(path.join(dir, 'junk.sqlite'), 'this is not a database at all, just text '.repeat(100));
    await expect(openStore(path.join(dir, 'junk.sqlite'))).rejects.toThrow('is not an SQLite file');
    await expect(openStore(dir)).rejects.toThrow('is a directory');
    await expect(openStore('postgres://localhost/x')).rejects.toThrow();
  });
});
