import { generate, joinTokens, quoteToken, rankingsAsync, rankingsWatchAsync, SpError, type NeuronIntervention, type RankingsResult, type WatchResult } from '@sp/core';
import { rankingSpec, rankReportHtml, showToken, watchSpec } from '@sp/report';
import type { Command } from 'commander';
import { info, inputIds, loadModel, parseIds, parseIntOpt, printJson, setNeuronOption } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';
import { parseSignedInt, parseView } from './lens.js';

interface RankCli {
  model?: string; ids?: string; prompt?: string; watch?: string; watchIds?: string; position?: number; eccoPosition?: number; generate?: number;
  view: string; json?: boolean; html?: string; svg?: string; png?: string; setNeuron?: NeuronIntervention[];
}

/** `sp rank`: Ecco's rankings (rank of each output token per layer) or rankings_watch (--watch). */
export function registerRank(program: Command): void {
  program
    .command('rank')
    .description('rank of each output token at every layer, or of candidate tokens (--watch) at one position')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--watch <tokens>', 'candidate tokens, each exactly one token: " is"," are" (comma-separated) or a JSON array')
    .option('--watch-ids <ids>', 'candidate token ids, comma-separated')
    .option('--position <p>', 'position for --watch: the hidden state read (default -1: the last)', parseSignedInt('--position'))
    .option('--ecco-position <p>', "position for --watch in Ecco's numbering: the predicted token, 1..n (reads hidden state p-1)", parseSignedInt('--ecco-position'))
    .option('--generate <n>', 'greedily generate n tokens first and rank only those (as Ecco does)', parseIntOpt('--generate', 1))
    .option('--view <rows>', 'layers | mid | all (see sp lens)', 'layers')
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only')
    .option('--html <file>', 'write a self-contained HTML report')
    .option('--svg <file>', 'write the chart as SVG')
    .option('--png <file>', 'write the chart as PNG')
    .action(async (o: RankCli, cmd: Command) => {
      const view = parseView(o.view);
      const watch = watchList(o);
      if (watch && o.generate !== undefined) throw new SpError('BAD_INPUT', 'give --watch or --generate, not both');
      if (!watch && o.position !== undefined) throw new SpError('BAD_INPUT', '--position needs --watch');
      if (!watch && o.eccoPosition !== undefined) throw new SpError('BAD_INPUT', '--ecco-position needs --watch');
      if (o.position !== undefined && o.eccoPosition !== undefined) throw new SpError('BAD_INPUT', 'give --position or --ecco-position, not both');
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        let ids = inputIds(model, o);
        if (watch) {
          const w = await rankingsWatchAsync(model, ids, watch, { position: o.position, eccoPosition: o.eccoPosition, view, interventions: o.setNeuron });
          await writeReports(cmd, o, () => rankReportHtml({ watch: w }), () => watchSpec(w));
          if (o.json) printJson(w);
          else process.stdout.write(watchTable(w));
          return;
        }
        const promptLength = ids.length;
        if (o.generate !== undefined) {
          const g = await generate(model, ids, { maxNewTokens: o.generate, eosTokenId: null, interventions: o.setNeuron });
          ids = [...ids, ...g.newTokens[0]];
          info(cmd, `generated ${quoteToken(g.texts[0])}`);
        }
        const r = await rankingsAsync(model, ids, { view, interventions: o.setNeuron, ...(o.generate !== undefined ? { promptLength, predictLast: false } : {}) });
        await writeReports(cmd, o, () => rankReportHtml({ rankings: r }), () => rankingSpec(r));
        if (o.json) printJson(r);
        else process.stdout.write(rankTable(r));
      } finally {
        model.dispose();
      }
    });
}

/** `--watch " is"," are"` (the shell passes ` is, are`) or `--watch '[" is"," are"]'`, or `--watch-ids 318,389`. */
function watchList(o: RankCli): Array<string | number> | undefined {
  if (o.watch !== undefined && o.watchIds !== undefined) throw new SpError('BAD_INPUT', 'give --watch or --watch-ids, not both');
  if (o.watchIds !== undefined) return parseIds(o.watchIds);
  if (o.watch === undefined) return undefined;
  const s = o.watch;
  if (s.trim().startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch {
      throw new SpError('BAD_INPUT', `--watch: ${JSON.stringify(s)} is not a JSON array of strings`);
    }
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new SpError('BAD_INPUT', '--watch: the JSON array must hold strings');
    return v as string[];
  }
  return s.split(',');
}

function rankTable(r: RankingsResult): string {
  const w = 12;
  const cell = (x: string) => (x.length > w - 1 ? x.slice(0, w - 2) + '…' : x).padEnd(w);
  const head = cell('layer') + r.positions.map((p) => cell(showToken(p.target.token, 9) + (p.predicted ? '*' : ''))).join('');
  const rows = [...r.layers].map((l, i) => ({ l, i })).reverse().map(({ l, i }) => cell(l.label) + r.positions.map((p) => cell(String(p.ranks[i]))).join(''));
  const note = r.positions.some((p) => p.predicted) ? '* the model\'s own prediction after the last token\n' : '';
  return `rank of each output token (1 = top):\n${[head, ...rows].map((x) => x.trimEnd()).join('\n')}\n${note}`;
}

function watchTable(wr: WatchResult): string {
  const w = 22;
  const head = 'layer'.padEnd(10) + wr.watch.map((t) => quoteToken(t.token).padEnd(w)).join('');
  const rows = [...wr.layers].reverse().map((l) => l.label.padEnd(10) + l.ranks.map((rk, j) => `${rk} (${l.probs[j].toPrecision(3)})`.padEnd(w)).join(''));
  return `rank (probability) after ${quoteToken(joinTokens(wr.tokens.slice(0, wr.position + 1)))}:\n${[head, ...rows].map((x) => x.trimEnd()).join('\n')}\n`;
}
