/** The hidden-state article's views on the random test model: every report is written, numbers check out. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findLocalModel, gpt2, tf } from '@sp/core';
import { main, pickModel } from '../logit-lens/hidden-state.js';

const FIXTURE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../shared/fixtures/tiny-gpt2');

test('pickModel says when it falls back to the random test model', () => {
  const p = pickModel();
  if (!findLocalModel('gpt2') && !findLocalModel('gpt2-large')) {
    expect(p.dir).toBe(FIXTURE);
    expect(p.note).toContain('RANDOM test model');
  } else {
    expect(p.note).toMatch(/^model gpt2/);
  }
  expect(pickModel('/some/dir')).toEqual({ dir: '/some/dir', note: 'model /some/dir' });
});

test('hidden-state views on tiny-gpt2: reports written, output-layer numbers match a plain forward pass', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sp-hidden-'));
  const lines: string[] = [];
  const s = await main({ model: FIXTURE, out }, (l) => lines.push(l));
  expect(s.files).toEqual(['ones.html', 'capitals.html', 'capitals-watch.html', 'is-are.html', 'he-she.html', 'ones-grid.png', 'is-are-watch.png', 'is-are-rankings.png']);
  for (const f of s.files) expect(fs.statSync(path.join(out, f)).size).toBeGreaterThan(f.endsWith('.png') ? 5_000 : 400_000);
  expect(fs.readFileSync(path.join(out, 'is-are.html'), 'utf8')).toContain('Watch: &quot; is&quot; vs &quot; are&quot;');
  expect(lines[0]).toBe(`model ${FIXTURE}`);
  expect(s.ones).toHaveLength(3); // embeddings + 2 blocks

  // The last lens row is the model's output: compare with softmax of model.forward's last logits.
  const model = await gpt2(FIXTURE);
  const probs = (text: string, ids: number[]) => {
    const logits = model.forward(text, { logits: 'last' });
    const p = tf.tidy(() => tf.softmax(logits.reshape([-1])).arraySync() as number[]);
    logits.dispose();
    return ids.map((i) => p[i]);
  };
  expect(s.ones[2]).toBeCloseTo(probs('1, 1, 1,', [352])[0], 7);
  const [is, are] = probs('The keys to the cabinet', [318, 389]);
  expect(s.isAre.is).toBeCloseTo(is, 7);
  expect(s.isAre.are).toBeCloseTo(are, 7);
  const [he, she] = probs('The nurse said that', [339, 673]);
  expect(s.heShe[1]).toMatchObject({ prompt: 'The nurse said that' });
  expect(s.heShe[1].he).toBeCloseTo(he, 7);
  expect(s.heShe[1].she).toBeCloseTo(she, 7);
  // capitals ran as one ragged batch: each row's output ranks match its own forward pass
  const rank = (text: string, id: number) => {
    const p = probs(text, Array.from({ length: model.config.dVocab }, (_, i) => i));
    return 1 + p.filter((x) => x > p[id]).length;
  };
  expect(s.capitals.map((c) => c.prompt)).toEqual(['The capital of France is', 'The capital of Germany is', 'The capital of Japan is']);
  s.capitals.forEach((c) => [6342, 11307, 11790].forEach((id, j) => expect(Math.abs(c.ranks[j] - rank(c.prompt, id))).toBeLessThanOrEqual(1))); // ±1: a float32 tie
  model.dispose();
  fs.rmSync(out, { recursive: true, force: true });
});
