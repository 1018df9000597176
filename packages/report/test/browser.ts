/**
 * Opens reports in a real headless Chromium (Debian's /usr/bin/chromium driven by playwright-core)
 * and records what a person would notice: console errors, failed scripts, network requests.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import pixelmatch from 'pixelmatch';
import { PNG } from 'pngjs';
import { tmpDir } from '../../core/test/helpers/fixtures.js'; // removed after the test file

export const CHROMIUM = process.env.SP_CHROMIUM ?? '/usr/bin/chromium';
export const haveChromium = fs.existsSync(CHROMIUM);
if (!haveChromium) {
  // CI installs chromium (.ci/run); say loudly why the browser tests are skipped on this machine.
  console.warn(`browser tests SKIPPED: ${CHROMIUM} not found (apt-get install chromium)`);
}
/** `describe` that runs only when Chromium is installed. */
export const describeBrowser = haveChromium ? describe : describe.skip;

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--font-render-hinting=none'],
  });
}

export interface Opened {
  page: Page;
  url: string;
  /** Console errors and warnings, uncaught exceptions, CSP violations. */
  problems: string[];
  /** Every request other than the report file itself. */
  requests: string[];
}

/** Write `html` to a temp file, open it, wait until every chart has rendered. */
export async function openReport(browser: Browser, html: string, name: string): Promise<Opened> {
  const file = path.join(tmpDir('sp-report-'), `${name}.html`);
  fs.writeFileSync(file, html);
  const url = `file://${file}`;
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 }, deviceScaleFactor: 1 });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('request', (r) => {
    if (r.url() !== url) requests.push(r.url());
  });
  await page.goto(url);
  await page.waitForSelector('body[data-ready]', { timeout: 30_000 });
  const ready = await page.getAttribute('body', 'data-ready');
  if (ready !== '1') problems.push(`charts did not render (data-ready=${ready})`);
  return { page, url, problems, requests };
}

/**
 * One browser for a describe block, and `open(html, name)` for its tests: after each test, every
 * page it opened must have had no console error or warning and made not a single network request.
 */
export function pageSession(): { open: (html: string, name: string) => Promise<Opened> } {
  let browser: Browser | undefined;
  const opened: Opened[] = [];
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    for (const o of opened.splice(0)) {
      expect(o.problems).toEqual([]);
      expect(o.requests).toEqual([]);
      await o.page.close();
    }
  });
  return {
    open: async (html, name) => {
      const o = await openReport(browser!, html, name);
      opened.push(o);
      return o;
    },
  };
}

/** Move the mouse to the centre of an element (as a person would; text on top of a cell is fine). */
export async function hoverCentre(page: Page, selector: string, index: number): Promise<void> {
  const els = await page.$$(selector);
  const box = await els[index].boundingBox();
  if (!box) throw new Error(`${selector}[${index}] is not visible`);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
}

export const SHOTS = path.join(path.dirname(new URL(import.meta.url).pathname), '__screenshots__');

/** Distinct colours and the share of non-white pixels: a blank or broken page has few of either. */
export function imageStats(png: Buffer): { colours: number; inked: number; width: number; height: number } {
  const img = PNG.sync.read(png);
  const seen = new Set<number>();
  let inked = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
    seen.add((r << 16) | (g << 8) | b);
    if (r < 240 || g < 240 || b < 240) inked++;
  }
  return { colours: seen.size, inked: inked / (img.width * img.height), width: img.width, height: img.height };
}

/**
 * Compare a screenshot with its committed baseline (tolerance: 1% of pixels may differ beyond
 * pixelmatch's anti-aliasing-aware threshold). A missing baseline, or SP_UPDATE_SCREENSHOTS=1,
 * writes it. Returns the share of differing pixels.
 */
export function matchBaseline(name: string, png: Buffer): number {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  if (!fs.existsSync(file) || process.env.SP_UPDATE_SCREENSHOTS === '1') {
    fs.writeFileSync(file, png);
    return 0;
  }
  const want = PNG.sync.read(fs.readFileSync(file));
  const got = PNG.sync.read(png);
  if (want.width !== got.width || want.height !== got.height) {
    fs.writeFileSync(path.join(os.tmpdir(), `${name}.actual.png`), png);
    throw new Error(`screenshot ${name}: size ${got.width}×${got.height} differs from the baseline's ${want.width}×${want.height} (actual saved in ${os.tmpdir()}; SP_UPDATE_SCREENSHOTS=1 to accept)`);
  }
  const diff = new PNG({ width: got.width, height: got.height });
  const n = pixelmatch(want.data, got.data, diff.data, got.width, got.height, { threshold: 0.1 });
  const share = n / (got.width * got.height);
  if (share > 0.01) {
    fs.writeFileSync(path.join(os.tmpdir(), `${name}.actual.png`), png);
    fs.writeFileSync(path.join(os.tmpdir(), `${name}.diff.png`), PNG.sync.write(diff));
  }
  return share;
}
