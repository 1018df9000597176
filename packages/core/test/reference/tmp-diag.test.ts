import path from 'node:path';
import { readFileSync } from 'node:fs';
import { refForward, refLens } from './gpt2-ref.js';
import { readSafetensorsDir } from './safetensors-mini.js';
it('diag', () => {
  for (const f of ['tiny-gpt2', 'tiny-gpt2-f16-prefixed']) {
    const dir = path.resolve('/work/shared/fixtures', f);
    const g = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8'));
    const w = readSafetensorsDir(dir);
    let ml = 0, mp = 0, t0 = performance.now();
    for (const c of g.cases) {
      const opts = c.inject ? { embeds: [{ pos: c.inject[0], vector: Array.from({ length: w.config.dModel }, (_, r) => w.get(`h.${c.inject[1]}.mlp.c_fc.weight`)[r * 4 * w.config.dModel + c.inject[2]]) }] } : {};
      const { logits } = refForward(w, c.ids, opts);
      const last = logits[logits.length - 1];
      for (const t of c.last_logits_top10) ml = Math.max(ml, Math.abs(last[t.id] - t.logit));
      for (const [id, v] of Object.entries(c.last_logits_at)) ml = Math.max(ml, Math.abs(last[Number(id)] - (v as number)));
      const lens = refLens(w, c.ids, opts);
      for (const gl of c.lens) gl.positions.forEach((gp: any, p: number) => gp.top.forEach((t: any) => { mp = Math.max(mp, Math.abs(Math.exp(lens[gl.layer][p][t.id]) - t.prob) / t.prob); }));
    }
    console.log(f, 'max logit diff', ml, 'max rel prob diff', mp, 'ms', performance.now() - t0);
  }
});
