/** `sp probe --html`: the speaking-probe card report of @sp/report, written next to the usual output. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureBuilt, FIXTURES, sp } from './cli-helpers.js';

beforeAll(() => ensureBuilt());

test('sp probe --html writes the card; --json output is unchanged', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-probe-html-'));
  const file = path.join(dir, 'probe.html');
  const r = sp(['probe', '--model', path.join(FIXTURES, 'tiny-gpt2'), '--neuron', '1,5', '--greedy', '--max-new-tokens', '4', '--json', '--html', file]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout) as { samples: Array<{ text: string }>; projection: { top: Array<{ token: string }> } };
  const html = fs.readFileSync(file, 'utf8');
  expect(html.includes('<h2>&lt;neuron&gt; = key L1 #5</h2>')).toBe(true);
  expect(html.includes(`<li>${j.samples[0].text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')}</li>`)).toBe(true);
  expect(html.includes(JSON.stringify(JSON.stringify(j.projection.top[0].token)).slice(1, -1))).toBe(true); // tooltip title in the spec
  fs.rmSync(dir, { recursive: true, force: true });
});
