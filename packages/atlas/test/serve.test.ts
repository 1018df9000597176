/**
 * The atlas server's JSON API over HTTP on 127.0.0.1 (Fastify's inject needs light-my-request's
 * ESM-only cookie module, which jest's CommonJS loader cannot require), over a real SQLite store filled by runScan:
 * responses equal the store's own answers, bad parameters are 400 `{error}`, unknown neurons 404,
 * and no input gives a 500. Also: the page's token display agrees with @sp/core's displayToken.
 */
import { displayText, displayToken } from '@sp/core';
import { atlasApp, reprobeCommand, shellQuote, type AtlasStore, type NeuronRecord, type ScanInfo } from '@sp/atlas';
import { projectionSpec } from '@sp/report';
import type { FastifyInstance } from 'fastify';
import { serveFixture } from './serve-fixture.js';
// @ts-expect-error plain ES module JS served to the browser (no types)
import * as pageDisplay from '../page/display.js';

const json = (x: unknown) => JSON.parse(JSON.stringify(x));

describe('atlas server API', () => {
  let store: AtlasStore;
  let app: FastifyInstance;
  let all: NeuronRecord[];
  let scans: ScanInfo[];
  let modelDir: string;
  let base: string;
  /** A GET as a client sends it (the path is sent as written: percent escapes kept). */
  const inject = async ({ url }: { method: 'GET'; url: string }) => {
    const r = await fetch(base + url);
    const text = await r.text();
    return { statusCode: r.status, headers: Object.fromEntries(r.headers), body: text, json: () => JSON.parse(text) };
  };
  beforeAll(async () => {
    const f = await serveFixture();
    store = f.store;
    modelDir = f.modelDir;
    app = await atlasApp(store, { title: f.file });
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    all = [];
    for await (const r of store.allNeurons()) all.push(r);
    scans = await store.scans();
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
  });
  const get = async (url: string) => {
    const r = await inject({ method: 'GET', url });
    return { status: r.statusCode, type: String(r.headers['content-type']), body: r.json() as any, headers: r.headers };
  };

  test('the fixture is a real scan: 20 key and 4 value neurons, samples and examples filled', () => {
    expect(all.filter((r) => r.kind === 'key')).toHaveLength(20);
    expect(all.filter((r) => r.kind === 'value')).toHaveLength(4);
    const k = all.find((r) => r.kind === 'key')!;
    expect(k.samples).toHaveLength(2);
    expect(k.examples).toHaveLength(4);
    expect(k.projection.top).toHaveLength(50);
  });

  test('/api/scans is store.scans()', async () => {
    const r = await get('/api/scans');
    expect(r.status).toBe(200);
    expect(r.type).toMatch(/^application\/json/);
    expect(r.body).toEqual(json(scans));
    expect(r.body).toHaveLength(2);
  });

  test('/api/neuron/:layer/:index equals store.neuron() for every neuron and kind', async () => {
    for (const rec of all) {
      const r = await get(`/api/neuron/${rec.layer}/${rec.index}?kind=${rec.kind}`);
      expect(r.status).toBe(200);
      expect(r.body).toEqual(json(rec));
      expect(r.body).toEqual(json(await store.neuron(rec.layer, rec.index, { kind: rec.kind })));
    }
    // no kind: the store's choice (the latest scan holding it)
    expect((await get('/api/neuron/1/2')).body).toEqual(json(await store.neuron(1, 2)));
    const key = scans.find((s) => s.settings.kind === 'key')!;
    expect((await get(`/api/neuron/0/3?model_digest=${key.modelDigest}&settings_digest=${key.settingsDigest}`)).body)
      .toEqual(json(await store.neuron(0, 3, { modelDigest: key.modelDigest, settingsDigest: key.settingsDigest })));
  });

  test('unknown neurons and routes are 404 {error}', async () => {
    for (const url of ['/api/neuron/0/10', '/api/neuron/0/0?kind=value', '/api/neuron/7/0', `/api/neuron/0/0?settings_digest=${'0'.repeat(64)}`, '/api/nothing', '/api/neuron/0/0/nothing', '/nothing.html']) {
      const r = await get(url);
      expect([url, r.status]).toEqual([url, 404]);
      expect(r.type).toMatch(/^application\/json/);
      expect(typeof r.body.error).toBe('string');
    }
    expect((await get('/api/neuron/0/10')).body).toEqual({ error: 'no key or value neuron L0 #10 in this store' });
  });

  test('/api/search equals store.search() for tokens, text, filters, sorts and pages', async () => {
    const token = all[3].projection.top[0].token;
    const cases: Array<[string, Parameters<AtlasStore['search']>[0]]> = [
      ['', { limit: 50, offset: 0 }],
      [`token=${encodeURIComponent(token)}`, { token, limit: 50, offset: 0 }],
      [`token=${encodeURIComponent(token)}&layer=1&kind=key&sort=example_projection_overlap&limit=3&offset=1`, { token, layer: 1, kind: 'key', sort: 'example_projection_overlap', limit: 3, offset: 1 }],
      ['text=the&sort=probe_projection_overlap', { text: 'the', sort: 'probe_projection_overlap', limit: 50, offset: 0 }],
      ['min_example_overlap=0&min_probe_overlap=0.1&sort=layer', { minExampleOverlap: 0, minProbeOverlap: 0.1, sort: 'layer', limit: 50, offset: 0 }],
      ['kind=value&limit=2&offset=2', { kind: 'value', limit: 2, offset: 2 }],
    ];
    let nonEmpty = 0;
    for (const [qs, q] of cases) {
      const r = await get(`/api/search?${qs}`);
      expect([qs, r.status]).toEqual([qs, 200]);
      const want = await store.search(q);
      expect(r.body).toEqual(json(want));
      if (want.hits.length) nonEmpty++;
    }
    expect(nonEmpty).toBeGreaterThanOrEqual(5);
    const t = (await get(`/api/search?token=${encodeURIComponent(token)}`)).body;
    expect(t.hits.some((h: { layer: number; index: number; kind: string; rank: number }) => h.layer === all[3].layer && h.index === all[3].index && h.kind === 'key' && h.rank === 0)).toBe(true);
  });

  test('bad parameters are 400 {error}, naming the parameter', async () => {
    const bad: Array<[string, RegExp]> = [
      ['/api/search?layer=abc', /layer/],
      ['/api/search?layer=1.5', /layer/],
      ['/api/search?layer=-1', /layer/],
      ['/api/search?layer=1&layer=2', /layer/],
      ['/api/search?limit=-1', /limit/],
      ['/api/search?limit=0', /limit/],
      ['/api/search?limit=501', /limit/],
      ['/api/search?offset=-3', /offset/],
      ['/api/search?sort=best', /sort/],
      ['/api/search?kind=query', /kind/],
      ['/api/search?min_example_overlap=2', /min_example_overlap/],
      ['/api/search?min_probe_overlap=x', /min_probe_overlap/],
      ['/api/search?lyer=3', /lyer/],
      ['/api/search?token=', /token/],
      ['/api/search?model_digest=zz', /model_digest/],
      ['/api/neuron/abc/1', /layer/],
      ['/api/neuron/0/1.5', /index/],
      ['/api/neuron/0/-1', /index/],
      ['/api/neuron/0/1?kind=nope', /kind/],
      ['/api/neuron/0/1/view?kind=nope', /kind/],
      ['/api/neuron/0/1?x=1', /x/],
    ];
    for (const [url, re] of bad) {
      const r = await get(url);
      expect([url, r.status]).toEqual([url, 400]);
      expect(r.type).toMatch(/^application\/json/);
      expect(Object.keys(r.body)).toEqual(['error']);
      expect(r.body.error).toMatch(/^bad parameter: /);
      expect(r.body.error).not.toMatch(/querystring|params/);
      expect(r.body.error).toMatch(re);
      expect(r.body.error).not.toContain('\n');
    }
  });

  test('no query string gives a 500 (odd bytes, huge numbers, injections)', async () => {
    const odd = ['%00', '%FF', '%E3%81', "' OR 1=1 --", '%25%5F', 'x'.repeat(2000), '1e400', '9'.repeat(40), 'NaN', 'Infinity', '[]', '{}', '%0A'];
    for (const v of odd) {
      for (const p of ['token', 'text', 'layer', 'limit', 'offset', 'sort', 'kind', 'min_example_overlap']) {
        const r = await inject({ method: 'GET', url: `/api/search?${p}=${v}` });
        expect([p, v, r.statusCode < 500]).toEqual([p, v, true]);
        expect(typeof r.json()).toBe('object');
      }
      const n = await inject({ method: 'GET', url: `/api/neuron/${v}/${v}` });
      expect([v, n.statusCode]).toEqual([v, expect.any(Number)]);
      expect(n.statusCode).toBeLessThan(500);
    }
    expect((await get('/api/search?limit=1e400')).body).toEqual({ error: 'bad parameter: limit must be a finite number' });
    expect((await get('/api/search?lyer=3')).body).toEqual({ error: 'bad parameter: unknown parameter "lyer"' });
    expect((await get('/api/search?sort=best')).body).toEqual({ error: 'bad parameter: sort must be one of rank, layer, example_projection_overlap, probe_projection_overlap' });
    expect((await get(`/api/search?text=${encodeURIComponent("' OR 1=1 --")}`)).body.total).toBe(0);
  });

  test('/view: the scan, the sp probe command line and the report projection specs', async () => {
    const rec = all.find((r) => r.kind === 'key' && r.layer === 1 && r.index === 2)!;
    const scan = scans.find((s) => s.settings.kind === 'key')!;
    const r = await get('/api/neuron/1/2/view?kind=key');
    expect(r.status).toBe(200);
    expect(r.body.scan).toEqual(json({ modelDigest: scan.modelDigest, settingsDigest: scan.settingsDigest, model: scan.model, settings: scan.settings, createdAt: scan.createdAt }));
    const s = scan.settings;
    expect(r.body.reprobe).toBe(`sp probe --model ${shellQuote(modelDir)} --neuron key:1,2 --prompt-name term-means --samples 2 --max-new-tokens 5 --seed 3 --temperature ${s.temperature} --top-k ${s.topK} --top-p ${s.topP} --repetition-penalty ${s.repetitionPenalty} --top 50`);
    expect(r.body.reprobe).toBe(reprobeCommand(scan, rec));
    expect(r.body.charts.top).toEqual(json(projectionSpec(rec.projection.top.slice(0, 20).map((t) => ({ token: t.token, value: t.score })), 'v·E', { title: 'FF key L1 #2: top tokens' })));
    expect(r.body.charts.bottom_normalized).toEqual(json(projectionSpec(rec.projection.bottom_normalized.slice(0, 20).map((t) => ({ token: t.token, value: t.score })), 'v·E / ‖E‖', { title: 'FF key L1 #2: bottom tokens (normalised)' })));
    // the value scan's neuron (the latest scan holding 1/2 when no kind is given)
    const v = await get('/api/neuron/1/2/view?kind=value');
    expect(v.body.reprobe).toContain('--neuron value:1,2 ');
    expect(v.body.reprobe).toContain('--samples 1 --max-new-tokens 4 --seed 4');
  });

  test('shellQuote: plain words bare, everything else single-quoted', () => {
    expect(shellQuote('/tmp/m-1')).toBe('/tmp/m-1');
    expect(shellQuote("it's <neuron>")).toBe(`'it'\\''s <neuron>'`);
    expect(shellQuote('a b;$(x)')).toBe(`'a b;$(x)'`);
  });

  test('the page, its scripts and Vega are served locally with a same-origin CSP', async () => {
    const page = await inject({ method: 'GET', url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toMatch(/^default-src 'self'/);
    expect(page.body).not.toMatch(/https?:\/\//);
    for (const f of ['/app.js', '/display.js', '/app.css', '/vendor/vega.min.js', '/vendor/vega-lite.min.js', '/vendor/vega-embed.min.js']) {
      const r = await inject({ method: 'GET', url: f });
      expect([f, r.statusCode]).toEqual([f, 200]);
      expect(r.body.length).toBeGreaterThan(1000);
    }
    expect((await inject({ method: 'GET', url: '/vendor/../server.ts' })).statusCode).toBe(404);
    expect((await inject({ method: 'GET', url: '/vendor/evil.js' })).statusCode).toBe(404);
    expect((await get('/api/info')).body).toEqual({ title: expect.stringMatching(/atlas\.sqlite$/) });
  });
});

describe("the page's token display", () => {
  test('agrees with @sp/core displayToken/displayText on every byte token and on format characters', () => {
    const tokens = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b < 0x80 ? b : 0xdc00 + b));
    tokens.push(' ', '  ', '\u00a0', '\u202e', '\u200b', '\ufeff', '\u{e0001}', '\ufffe', '\u2028', ' Japan', '<b>', '&amp;', '日本', '\udce6\udc97', 'a\nb', '\t');
    for (const t of tokens) {
      expect([t, pageDisplay.displayToken(t)]).toEqual([t, displayToken(t)]);
      expect([t, pageDisplay.displayText(`x${t}y`)]).toEqual([t, displayText(`x${t}y`)]);
    }
  });
});
