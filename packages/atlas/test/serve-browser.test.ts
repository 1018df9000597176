/**
 * The atlas page in a real headless Chromium (Debian's, driven by playwright-core): search a token,
 * open a neuron, see its samples, the highlighted example token and the charts, use a filter, follow
 * a link. No console error, and every request goes to the server on 127.0.0.1.
 */
import { displayText, displayToken } from '@sp/core';
import { serveAtlas, type AtlasStore, type NeuronRecord } from '@sp/atlas';
import type { Browser, Page } from 'playwright-core';
import { describeBrowser, launch } from '../../report/test/browser.js';
import { serveFixture } from './serve-fixture.js';

describeBrowser('atlas page in Chromium', () => {
  let store: AtlasStore;
  let server: Awaited<ReturnType<typeof serveAtlas>>;
  let browser: Browser;
  let all: NeuronRecord[];
  const problems: string[] = [];
  const requests: string[] = [];
  beforeAll(async () => {
    store = (await serveFixture()).store;
    all = [];
    for await (const r of store.allNeurons()) all.push(r);
    server = await serveAtlas(store, { port: 0, title: 'atlas.sqlite' });
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await store?.close();
  });

  async function open(hash = ''): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(server.url + hash);
    await ready(page);
    return page;
  }
  async function ready(page: Page): Promise<void> {
    await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
    expect(await page.getAttribute('body', 'data-ready')).toBe('1');
  }
  /** Click something that changes the hash, wait for the new view. */
  async function go(page: Page, click: () => Promise<void>): Promise<void> {
    await page.evaluate(() => document.body.removeAttribute('data-ready'));
    await click();
    await ready(page);
  }

  test('search a token, open a neuron: samples, highlighted example tokens, scores, charts, the probe command', async () => {
    const rec = all.find((r) => r.kind === 'key' && r.layer === 1 && r.index === 3)!;
    const token = rec.projection.top[0].token;
    const page = await open();
    expect(await page.textContent('#store')).toBe('atlas.sqlite');
    await page.fill('#f-token', token);
    await go(page, () => page.click('#f-go'));
    const want = await store.search({ token, limit: 25 });
    expect(await page.textContent('#view h2')).toBe(`${want.total} neuron${want.total === 1 ? '' : 's'}`);
    const rows = await page.$$eval('#results tbody tr', (trs) => trs.map((t) => [Number(t.getAttribute('data-layer')), Number(t.getAttribute('data-index'))]));
    expect(rows).toEqual(want.hits.map((h) => [h.layer, h.index]));
    expect(page.url()).toContain(`#/search?token=${encodeURIComponent(token).replace(/%20/g, '+')}`);

    const i = want.hits.findIndex((h) => h.layer === 1 && h.index === 3 && h.kind === 'key');
    expect(i).toBeGreaterThanOrEqual(0);
    await go(page, async () => (await page.$$('#results a.neuron-link'))[i].click());
    expect(page.url()).toMatch(/#\/neuron\/1\/3\?kind=key$/);
    expect(await page.textContent('#neuron-title')).toBe('FF key L1 #3');
    expect(await page.$$eval('#samples li', (li) => li.map((x) => x.textContent))).toEqual(rec.samples.map((s) => displayText(s.text)));
    expect(await page.$$eval('#examples .context mark', (m) => m.map((x) => x.textContent))).toEqual(rec.examples.map((e) => displayToken(e.context[e.center])));
    expect(await page.$$eval('#examples .context', (c) => c.map((x) => x.textContent))).toEqual(rec.examples.map((e) => e.context.map((t, k) => (k === e.center ? displayToken(t) : displayText(t))).join('')));
    expect(await page.$$eval('#proj-top tbody tr td:nth-child(2)', (td) => td.map((x) => x.textContent))).toEqual(rec.projection.top.map((t) => displayToken(t.token)));
    expect(await page.textContent('#reprobe')).toContain('--neuron key:1,3 ');
    // the Vega-Lite charts rendered as SVG: one bar per token (20)
    expect(await page.$$eval('#chart svg .mark-rect path', (p) => p.length)).toBe(20);
    expect(await page.$$eval('#chart-bottom svg .mark-rect path', (p) => p.length)).toBe(20);

    // normalised lists: a link, so the view is linkable too
    await go(page, () => page.click('#norm-toggle'));
    expect(page.url()).toContain('norm=1');
    expect(await page.$$eval('#proj-top tbody tr td:nth-child(2)', (td) => td.map((x) => x.textContent))).toEqual(rec.projection.top_normalized.map((t) => displayToken(t.token)));
    await page.close();
  });

  test('filters: layer and kind; a neuron URL opens directly; an unknown neuron shows the error', async () => {
    const page = await open();
    await page.selectOption('#f-layer', '1');
    await page.selectOption('#f-kind', 'value');
    await go(page, () => page.click('#f-go'));
    const layers = await page.$$eval('#results tbody tr', (trs) => trs.map((t) => t.getAttribute('data-layer')));
    expect(layers).toEqual(['1', '1', '1', '1']);
    expect(await page.$$eval('#results a.neuron-link', (a) => a.map((x) => x.textContent))).toEqual(['value L1 #0', 'value L1 #1', 'value L1 #2', 'value L1 #3']);
    await page.close();

    const direct = await open('#/neuron/0/2?kind=key');
    const rec = all.find((r) => r.kind === 'key' && r.layer === 0 && r.index === 2)!;
    expect(await direct.$$eval('#samples li', (li) => li.length)).toBe(rec.samples.length);
    await direct.evaluate(() => document.body.removeAttribute('data-ready'));
    await direct.evaluate(() => { location.hash = '#/neuron/0/999'; });
    await direct.waitForSelector('body[data-ready]');
    expect(await direct.getAttribute('body', 'data-ready')).toBe('error');
    expect(await direct.textContent('#status')).toBe('error: no key or value neuron L0 #999 in this store');
    await direct.close();
  });

  afterAll(() => {
    // A 404 fetch logs "Failed to load resource" in Chromium: the one expected console error.
    expect(problems.filter((p) => !/404 \(Not Found\)/.test(p))).toEqual([]);
    expect(requests.length).toBeGreaterThan(10);
    const origin = new URL(server.url).origin;
    expect(origin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(requests.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
  });
});
