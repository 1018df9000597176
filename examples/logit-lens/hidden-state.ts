// The views of the "hidden states" article (Ecco, Alammar 2021), reproduced with @sp/core and @sp/report.
// Run: `pnpm --filter @sp/examples exec tsx logit-lens/hidden-state.ts [--model DIR|NAME] [--out DIR]`.
// Uses gpt2-large, else gpt2, when their weights are on disk (SP_WEIGHTS_DIR, weights/, the cache);
// otherwise the random test model of ../shared/fixtures — the pictures then show the views, not
// GPT-2's behaviour, and the script says so.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLocalModel, gpt2, logitLens, rankings, rankingsWatch, topNeurons } from '@sp/core';
import { lensGridSpec, lensReportHtml, rankingSpec, rankReportHtml, toPng, watchSpec } from '@sp/report';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TEST_MODEL = path.resolve(HERE, '../../../shared/fixtures/tiny-gpt2');

/** gpt2-large, else gpt2, else the random test model: [dir, note]. */
export function pickModel(requested?: string): { dir: string; note: string } {
  if (requested) return { dir: requested, note: `model ${requested}` };
  for (const name of ['gpt2-large', 'gpt2']) {
    const dir = findLocalModel(name);
    if (dir) return { dir, note: `model ${name} (${dir})` };
  }
  return { dir: TEST_MODEL, note: 'NOTE: no GPT-2 weights on disk (run `sp download gpt2`); using the RANDOM test model tiny-gpt2 — the views are right, the predictions meaningless' };
}

export interface Summary {
  model: string;
  /** Probability of the next " 1" after "1, 1, 1," at each layer (the article: it rises through the layers). */
  ones: number[];
  /** Rank of " Paris" / " Berlin" / " Tokyo" at the output, after each "The capital of X is". */
  capitals: Array<{ prompt: string; ranks: number[] }>;
  /** " is" vs " are" after "The keys to the cabinet", at the output: probabilities. */
  isAre: { is: number; are: number };
  /** " he" vs " she" after "The doctor/nurse said that", at the output. */
  heShe: Array<{ prompt: string; he: number; she: number }>;
  files: string[];
}

export async function main(opts: { model?: string; out?: string; png?: boolean } = {}, log: (s: string) => void = console.log): Promise<Summary> {
  const { dir, note } = pickModel(opts.model);
  const out = opts.out ?? path.join(HERE, 'out');
  fs.mkdirSync(out, { recursive: true });
  log(note);
  const model = await gpt2(dir);
  const files: string[] = [];
  const write = async (name: string, data: string | Uint8Array) => {
    fs.writeFileSync(path.join(out, name), data);
    files.push(name);
  };
  try {
    // 1. "1, 1, 1,": the lens grid, and the rank of the next " 1" at every layer.
    const ones = logitLens(model, '1, 1, 1,', { topk: 10 });
    const next = rankingsWatch(model, '1, 1, 1,', [' 1']);
    await write('ones.html', lensReportHtml(ones, { title: 'Logit lens: "1, 1, 1,"', neurons: topNeurons(model, '1, 1, 1,', { k: 10 }) }));
    log(`"1, 1, 1," → P(" 1") by layer: ${next.layers.map((l) => l.probs[0].toPrecision(2)).join(' ')}`);

    // 2. Country capitals, as one batch: the capital's rank at every layer.
    const capitals = ['The capital of France is', 'The capital of Germany is', 'The capital of Japan is'];
    const cities = [' Paris', ' Berlin', ' Tokyo'];
    const capLens = logitLens(model, capitals, { topk: 5 });
    const capWatch = rankingsWatch(model, capitals, cities);
    await write('capitals.html', lensReportHtml(capLens, { title: 'Logit lens: country capitals' }));
    await write('capitals-watch.html', rankReportHtml({ watch: capWatch }, { title: 'Capitals: rank of each city by layer' }));
    capWatch.forEach((w, i) => log(`${JSON.stringify(capitals[i])} → ranks at the output: ${cities.map((c, j) => `${c.trim()} ${w.layers.at(-1)!.ranks[j]}`).join(', ')}`));

    // 3. Agreement: " is" vs " are" after "The keys to the cabinet" (and the rankings of the sentence).
    const keys = 'The keys to the cabinet';
    const isAre = rankingsWatch(model, keys, [' is', ' are']);
    const keyRanks = rankings(model, `${keys} is on the table`);
    await write('is-are.html', rankReportHtml({ rankings: keyRanks, watch: isAre }, { title: '"The keys to the cabinet": is or are?' }));
    const lastIA = isAre.layers.at(-1)!;
    log(`${JSON.stringify(keys)} → P(" is") ${lastIA.probs[0].toPrecision(3)}, P(" are") ${lastIA.probs[1].toPrecision(3)}`);

    // 4. Pronouns: " he" vs " she" after a doctor / a nurse.
    const roles = ['The doctor said that', 'The nurse said that'];
    const heShe = rankingsWatch(model, roles, [' he', ' she']);
    await write('he-she.html', rankReportHtml({ watch: heShe }, { title: 'Doctor / nurse: he or she?' }));
    heShe.forEach((w, i) => log(`${JSON.stringify(roles[i])} → P(" he") ${w.layers.at(-1)!.probs[0].toPrecision(3)}, P(" she") ${w.layers.at(-1)!.probs[1].toPrecision(3)}`));

    // Static pictures for papers / the docs.
    if (opts.png !== false) {
      await write('ones-grid.png', await toPng(lensGridSpec(ones, { title: 'Logit lens: "1, 1, 1,"' })));
      await write('is-are-watch.png', await toPng(watchSpec(isAre)));
      await write('is-are-rankings.png', await toPng(rankingSpec(keyRanks)));
    }
    log(`wrote ${files.map((f) => path.join(out, f)).join(', ')}`);
    return {
      model: note,
      ones: next.layers.map((l) => l.probs[0]),
      capitals: capWatch.map((w, i) => ({ prompt: capitals[i], ranks: w.layers.at(-1)!.ranks })),
      isAre: { is: lastIA.probs[0], are: lastIA.probs[1] },
      heShe: heShe.map((w, i) => ({ prompt: roles[i], he: w.layers.at(-1)!.probs[0], she: w.layers.at(-1)!.probs[1] })),
      files,
    };
  } finally {
    model.dispose();
  }
}

/** `--model X --out Y --no-png` */
function args(argv: string[]): { model?: string; out?: string; png?: boolean } {
  const o: { model?: string; out?: string; png?: boolean } = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--model') o.model = argv[++i];
    else if (argv[i] === '--out') o.out = argv[++i];
    else if (argv[i] === '--no-png') o.png = false;
    else throw new Error(`unknown argument ${argv[i]} (use --model DIR, --out DIR, --no-png)`);
  }
  return o;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(args(process.argv.slice(2)));
