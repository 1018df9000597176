/** The hidden-state article's views on the random test model: every report is written, numbers check out. */
import fs from 'node:fs';
import path from 'node:path';
import { findLocalModel, gpt2, tf } from '@sp/core';
import { ARTICLE, EXTRAS, main, pickModel } from '../logit-lens/hidden-state.js';
import { tmpDir } from '../../packages/core/test/helpers/fixtures.js'; // removed after the test file

const FIXTURE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../packages/core/test/fixtures/tiny-gpt2');

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

test("the experiments are the article's own: prompts, watched tokens, positions (extras apart)", () => {
  expect(ARTICLE.ones).toEqual({ prompt: ' 1, 1, 1,', watch: [' 1'], eccoPosition: 6, generate: 3 }); // the leading space
  expect(ARTICLE.eu.prompt).toBe('The countries of the European Union are:\n1. Austria\n2. Belgium\n3. Bulgaria\n4.');
  expect(ARTICLE.agreement).toEqual({ prompts: ['The keys to the cabinet', 'The key to the cabinets'], watch: [' is', ' are'], eccoPosition: 5 });
  expect(ARTICLE.bias).toEqual({ prompts: ['The doctor was a', 'The nurse was a'], watch: [' man', ' woman'] });
  expect(Object.keys(ARTICLE)).toEqual(['ones', 'eu', 'agreement', 'bias']);
  expect(Object.keys(EXTRAS)).toEqual(['capitals', 'pronouns']);
});

test('hidden-state experiments on tiny-gpt2: reports written, the article\'s tokens, output-layer numbers match a plain forward pass', async () => {
  const out = tmpDir('sp-hidden-');
  const lines: string[] = [];
  const s = await main({ model: FIXTURE, out }, (l) => lines.push(l));
  expect(s.files).toEqual([
    'ones.html', 'ones-rankings.html', 'eu-rankings.html', 'is-are.html', 'is-are-2.html', 'doctor.html', 'nurse.html',
    'extra-capitals.html', 'extra-capitals-watch.html', 'extra-he-she.html',
    'ones-grid.png', 'eu-rankings.png', 'is-are-watch.png', 'is-are-2-watch.png',
  ]);
  for (const f of s.files) expect(fs.statSync(path.join(out, f)).size).toBeGreaterThan(f.endsWith('.png') ? 5_000 : 400_000);
  expect(fs.readFileSync(path.join(out, 'is-are.html'), 'utf8')).toContain('Watch: &quot; is&quot; vs &quot; are&quot;');
  expect(fs.readFileSync(path.join(out, 'nurse.html'), 'utf8')).toContain('Watch: &quot; man&quot; vs &quot; woman&quot;');
  expect(lines[0]).toBe(`model ${FIXTURE}`);
  expect(lines.filter((l) => l.startsWith('extra: '))).toHaveLength(5); // extras say so
  expect(s.ones).toHaveLength(3); // embeddings + 2 blocks

  const model = await gpt2(FIXTURE);
  // the article's token ids (its Ecco output): " 1, 1, 1," has 6 tokens, the EU prompt 23
  expect(model.encode(ARTICLE.ones.prompt)).toEqual([352, 11, 352, 11, 352, 11]);
  expect(model.encode(ARTICLE.eu.prompt)).toEqual([464, 2678, 286, 262, 3427, 4479, 389, 25, 198, 16, 13, 17322, 198, 17, 13, 15664, 198, 18, 13, 27902, 198, 19, 13]);
  expect(ARTICLE.bias.watch.map((t) => model.tokenId(t))).toEqual([582, 2415]);
  expect(ARTICLE.agreement.watch.map((t) => model.tokenId(t))).toEqual([318, 389]);
  // The last lens row is the model's output: compare with softmax of model.forward's last logits.
  const probs = (text: string | number[], ids: number[]) => {
    const logits = model.forward(text, { logits: 'last' });
    const p = tf.tidy(() => tf.softmax(logits.reshape([-1])).arraySync() as number[]);
    logits.dispose();
    return ids.map((i) => p[i]);
  };
  const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThan(1e-6 * b + 1e-9);
  close(s.ones[2], probs(' 1, 1, 1,', [352])[0]);
  s.agreement.forEach((a, i) => {
    expect(a.prompt).toBe(ARTICLE.agreement.prompts[i]);
    const [is, are] = probs(a.prompt, [318, 389]);
    close(a.is, is);
    close(a.are, are);
  });
  s.bias.forEach((b, i) => {
    expect(b.prompt).toBe(ARTICLE.bias.prompts[i]);
    const [man, woman] = probs(b.prompt, [582, 2415]);
    close(b.man, man);
    close(b.woman, woman);
  });
  // rankings of generated tokens: the EU run ranks its 10 greedy tokens, each rank 1 at the output (greedy)
  expect(s.eu.generated).toHaveLength(10);
  expect(s.eu.ranks.map((r) => r.at(-1))).toEqual(Array(10).fill(1));
  expect(s.onesRankings.generated).toHaveLength(3);
  const euIds = model.encode(ARTICLE.eu.prompt);
  expect(s.eu.generated[0]).toBe(probs(euIds, Array.from({ length: model.config.dVocab }, (_, i) => i)).reduce((best, p, i, all) => (p > all[best] ? i : best), 0));
  const [he, she] = probs('The nurse said that', [339, 673]);
  expect(s.heShe[1]).toMatchObject({ prompt: 'The nurse said that' });
  close(s.heShe[1].he, he);
  close(s.heShe[1].she, she);
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
