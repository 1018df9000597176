// The experiments of the "hidden states" article (Ecco, Alammar 2021), reproduced with @sp/core and @sp/report
// (ARTICLE: its own prompts and watched tokens; EXTRAS: sp's additions, labelled as such).
// Run: `pnpm --filter @sp/examples exec tsx logit-lens/hidden-state.ts [--model DIR|NAME] [--out DIR]`.
// Uses gpt2-large, else gpt2, when their weights are on disk (SP_WEIGHTS_DIR, weights/, the cache);
// otherwise the random test model of packages/core/test/fixtures — the pictures then show the views, not
// GPT-2's behaviour, and the script says so.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLocalModel, generate, gpt2, logitLens, rankings, rankingsWatch, topNeurons } from '@sp/core';
import { lensGridSpec, lensReportHtml, rankingSpec, rankReportHtml, toPng, watchSpec } from '@sp/report';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TEST_MODEL = path.resolve(HERE, '../../packages/core/test/fixtures/tiny-gpt2');

/** gpt2-large, else gpt2, else the random test model: [dir, note]. */
export function pickModel(requested?: string): { dir: string; note: string } {
  if (requested) return { dir: requested, note: `model ${requested}` };
  for (const name of ['gpt2-large', 'gpt2']) {
    const dir = findLocalModel(name);
    if (dir) return { dir, note: `model ${name} (${dir})` };
  }
  return { dir: TEST_MODEL, note: 'NOTE: no GPT-2 weights on disk (run `sp download gpt2`); using the RANDOM test model tiny-gpt2 — the views are right, the predictions meaningless' };
}

/**
 * The article's own experiments, exactly as it runs them (Alammar, "Finding the Words to Say",
 * 2021, and its Ecco notebooks). Positions are Ecco's where the article gives one (`eccoPosition`
 * names the predicted token: hidden state eccoPosition − 1).
 */
export const ARTICLE = {
  /** `lm.generate(" 1, 1, 1,", generate=1)`, `layer_predictions(position=6)`; the ' 1' rising through the layers, then the rankings of the generated ' 1 , 1'. */
  ones: { prompt: ' 1, 1, 1,', watch: [' 1'], eccoPosition: 6, generate: 3 },
  /** The EU-countries rankings: the generated continuation's rank at every layer (the article samples 10 tokens; here greedy, to be reproducible). */
  eu: { prompt: 'The countries of the European Union are:\n1. Austria\n2. Belgium\n3. Bulgaria\n4.', generate: 10 },
  /** Subject-verb agreement: rankings_watch(watch=[318, 389], position=5) on both sentences. */
  agreement: { prompts: ['The keys to the cabinet', 'The key to the cabinets'], watch: [' is', ' are'], eccoPosition: 5 },
  /** Probing for bias: " man" vs " woman" after each profession. */
  bias: { prompts: ['The doctor was a', 'The nurse was a'], watch: [' man', ' woman'] },
} as const;

/** Extra experiments of sp's own, not in the article. */
export const EXTRAS = {
  capitals: { prompts: ['The capital of France is', 'The capital of Germany is', 'The capital of Japan is'], watch: [' Paris', ' Berlin', ' Tokyo'] },
  pronouns: { prompts: ['The doctor said that', 'The nurse said that'], watch: [' he', ' she'] },
} as const;

export interface Summary {
  model: string;
  /** Probability of the next " 1" after " 1, 1, 1," at each layer (the article: it rises through the layers). */
  ones: number[];
  /** The greedy continuation of " 1, 1, 1," whose rankings are shown, and those rankings (per token, per layer). */
  onesRankings: { generated: number[]; ranks: number[][] };
  /** The EU prompt's greedy continuation and each generated token's rank per layer. */
  eu: { generated: number[]; ranks: number[][] };
  /** " is" vs " are" at the output, per sentence. */
  agreement: Array<{ prompt: string; is: number; are: number; ranks: number[][] }>;
  /** " man" vs " woman" at the output, per profession. */
  bias: Array<{ prompt: string; man: number; woman: number; ranks: number[][] }>;
  /** Extra: rank of " Paris" / " Berlin" / " Tokyo" at the output, after each "The capital of X is". */
  capitals: Array<{ prompt: string; ranks: number[] }>;
  /** Extra: " he" vs " she" after "The doctor/nurse said that", at the output. */
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
  /** Greedy continuation, then Ecco's rankings of the generated tokens only. */
  const generatedRankings = async (prompt: string, n: number) => {
    const ids = model.encode(prompt);
    const g = await generate(model, ids, { maxNewTokens: n, eosTokenId: null });
    return rankings(model, [...ids, ...g.newTokens[0]], { promptLength: ids.length, predictLast: false });
  };
  const at = (w: { layers: Array<{ probs: number[] }> }) => w.layers.at(-1)!.probs;
  try {
    // 1. " 1, 1, 1,": the lens grid, the ' 1' at the predicted position (Ecco's position 6), the rankings of ' 1 , 1'.
    const o = ARTICLE.ones;
    const ones = logitLens(model, o.prompt, { topk: 10 });
    const next = rankingsWatch(model, o.prompt, [...o.watch], { eccoPosition: o.eccoPosition });
    const onesRanks = await generatedRankings(o.prompt, o.generate);
    await write('ones.html', lensReportHtml(ones, { title: `Logit lens: ${JSON.stringify(o.prompt)}`, neurons: topNeurons(model, o.prompt, { k: 10 }) }));
    await write('ones-rankings.html', rankReportHtml({ rankings: onesRanks, watch: next }, { title: `Rankings of the continuation of ${JSON.stringify(o.prompt)}` }));
    log(`${JSON.stringify(o.prompt)} → P(" 1") by layer: ${next.layers.map((l) => l.probs[0].toPrecision(2)).join(' ')}`);

    // 2. The EU countries: rankings of a generated continuation.
    const eu = await generatedRankings(ARTICLE.eu.prompt, ARTICLE.eu.generate);
    await write('eu-rankings.html', rankReportHtml({ rankings: eu }, { title: 'The countries of the European Union: rankings of the generated tokens' }));
    log(`EU countries → generated ${JSON.stringify(model.decode(eu.ids.slice(eu.prompt_length)))}`);

    // 3. Agreement: " is" vs " are" after "The keys to the cabinet" and "The key to the cabinets".
    const ag = ARTICLE.agreement;
    const isAre = rankingsWatch(model, [...ag.prompts], [...ag.watch], { eccoPosition: ag.eccoPosition });
    await write('is-are.html', rankReportHtml({ watch: isAre[0] }, { title: `${JSON.stringify(ag.prompts[0])}: is or are?` }));
    await write('is-are-2.html', rankReportHtml({ watch: isAre[1] }, { title: `${JSON.stringify(ag.prompts[1])}: is or are?` }));
    isAre.forEach((w, i) => log(`${JSON.stringify(ag.prompts[i])} → P(" is") ${at(w)[0].toPrecision(3)}, P(" are") ${at(w)[1].toPrecision(3)}`));

    // 4. Bias: " man" vs " woman" after "The doctor was a" / "The nurse was a".
    const b = ARTICLE.bias;
    const bias = rankingsWatch(model, [...b.prompts], [...b.watch]);
    await write('doctor.html', rankReportHtml({ watch: bias[0] }, { title: `${JSON.stringify(b.prompts[0])}: man or woman?` }));
    await write('nurse.html', rankReportHtml({ watch: bias[1] }, { title: `${JSON.stringify(b.prompts[1])}: man or woman?` }));
    bias.forEach((w, i) => log(`${JSON.stringify(b.prompts[i])} → P(" man") ${at(w)[0].toPrecision(3)}, P(" woman") ${at(w)[1].toPrecision(3)}`));

    // Extras (not in the article). Country capitals as one batch; pronouns after a doctor / a nurse.
    const cap = EXTRAS.capitals;
    const capLens = logitLens(model, [...cap.prompts], { topk: 5 });
    const capWatch = rankingsWatch(model, [...cap.prompts], [...cap.watch]);
    await write('extra-capitals.html', lensReportHtml(capLens, { title: 'Extra: logit lens of country capitals' }));
    await write('extra-capitals-watch.html', rankReportHtml({ watch: capWatch }, { title: 'Extra: rank of each capital by layer' }));
    capWatch.forEach((w, i) => log(`extra: ${JSON.stringify(cap.prompts[i])} → ranks at the output: ${cap.watch.map((c, j) => `${c.trim()} ${w.layers.at(-1)!.ranks[j]}`).join(', ')}`));
    const pr = EXTRAS.pronouns;
    const heShe = rankingsWatch(model, [...pr.prompts], [...pr.watch]);
    await write('extra-he-she.html', rankReportHtml({ watch: heShe }, { title: 'Extra: doctor / nurse: he or she?' }));
    heShe.forEach((w, i) => log(`extra: ${JSON.stringify(pr.prompts[i])} → P(" he") ${at(w)[0].toPrecision(3)}, P(" she") ${at(w)[1].toPrecision(3)}`));

    // Static pictures for papers / the docs.
    if (opts.png !== false) {
      await write('ones-grid.png', await toPng(lensGridSpec(ones, { title: `Logit lens: ${JSON.stringify(o.prompt)}` })));
      await write('eu-rankings.png', await toPng(rankingSpec(eu)));
      await write('is-are-watch.png', await toPng(watchSpec(isAre[0])));
      await write('is-are-2-watch.png', await toPng(watchSpec(isAre[1])));
    }
    log(`wrote ${files.map((f) => path.join(out, f)).join(', ')}`);
    const gen = (r: typeof eu) => ({ generated: r.ids.slice(r.prompt_length), ranks: r.positions.map((p) => p.ranks) });
    return {
      model: note,
      ones: next.layers.map((l) => l.probs[0]),
      onesRankings: gen(onesRanks),
      eu: gen(eu),
      agreement: isAre.map((w, i) => ({ prompt: ag.prompts[i], is: at(w)[0], are: at(w)[1], ranks: w.layers.map((l) => l.ranks) })),
      bias: bias.map((w, i) => ({ prompt: b.prompts[i], man: at(w)[0], woman: at(w)[1], ranks: w.layers.map((l) => l.ranks) })),
      capitals: capWatch.map((w, i) => ({ prompt: cap.prompts[i], ranks: w.layers.at(-1)!.ranks })),
      heShe: heShe.map((w, i) => ({ prompt: pr.prompts[i], he: at(w)[0], she: at(w)[1] })),
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
