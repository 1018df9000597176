import { directLogitAttributionAsync, quoteToken, type DlaResult, type NeuronIntervention } from '@sp/core';
import { dlaReportHtml, dlaSpec } from '@sp/report';
import type { Command } from 'commander';
import { info, inputIds, loadModel, parseIntOpt, printJson, setNeuronOption } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';
import { parseSignedInt } from './lens.js';

interface DlaCli {
  model?: string; ids?: string; prompt?: string; token?: string; tokenId?: number; vs?: string; vsId?: number; position?: number; top: number;
  setNeuron?: NeuronIntervention[]; json?: boolean; html?: string; svg?: string; png?: string;
}

/** `sp dla`: direct logit attribution of the logit (difference) at one position to embeddings, heads, MLPs and biases. */
export function registerDla(program: Command): void {
  program
    .command('dla')
    .description("direct logit attribution: each head's, MLP's and embedding's direct share of a token's logit (or of a logit difference)")
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--token <text>', "the token whose logit is attributed (exactly one token, e.g. ' is')")
    .option('--token-id <id>', 'the same, by id', parseIntOpt('--token-id', 0))
    .option('--vs <text>', "attribute logit(token) − logit(vs) instead (one token, e.g. ' are')")
    .option('--vs-id <id>', 'the same, by id', parseIntOpt('--vs-id', 0))
    .option('--position <p>', 'position read (default -1: the last)', parseSignedInt('--position'))
    .option('--top <k>', 'components in the text table (default 15)', parseIntOpt('--top', 1), 15)
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only: {model, ids, tokens, position, token, token_id, vs?, vs_id?, components: [{name, value}], total, logit, scale}')
    .option('--html <file>', 'write a self-contained HTML report (bar chart of the top components)')
    .option('--svg <file>', 'write the bar chart as SVG')
    .option('--png <file>', 'write the bar chart as PNG')
    .action(async (o: DlaCli, cmd: Command) => {
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        const ids = inputIds(model, o);
        const t0 = performance.now();
        const r = await directLogitAttributionAsync(model, ids, { token: o.token, tokenId: o.tokenId, vs: o.vs, vsId: o.vsId, position: o.position, interventions: o.setNeuron });
        info(cmd, `dla: ${r.components.length} components at position ${r.position} in ${(performance.now() - t0).toFixed(0)} ms`);
        await writeReports(cmd, o, () => dlaReportHtml(r), () => dlaSpec(r));
        if (o.json) printJson(r);
        else process.stdout.write(dlaTable(r, o.top));
      } finally {
        model.dispose();
      }
    });
}

/** The top components by |value|, then the rest summed, then the total. */
function dlaTable(r: DlaResult, top: number): string {
  const what = `logit(${quoteToken(r.token)})${r.vs !== undefined ? ` − logit(${quoteToken(r.vs)})` : ''}`;
  const order = r.components.map((c, i) => ({ c, i })).sort((a, b) => Math.abs(b.c.value) - Math.abs(a.c.value) || a.i - b.i);
  const row = (name: string, v: number) => name.padEnd(12) + v.toFixed(4).padStart(11) + (r.total !== 0 ? `${((100 * v) / r.total).toFixed(1).padStart(9)}%` : '');
  const lines = order.slice(0, top).map(({ c }) => row(c.name, c.value));
  const rest = order.slice(top);
  if (rest.length) lines.push(row(`other (${rest.length})`, rest.reduce((a, { c }) => a + c.value, 0)));
  lines.push(row('total', r.total));
  return `${what} at position ${r.position} ${quoteToken(r.tokens[r.position])} = ${r.logit.toFixed(4)}; direct contributions (÷ ln_final scale ${r.scale.toFixed(4)}):\n`
    + `${'component'.padEnd(12)}${'value'.padStart(11)}${'of total'.padStart(10)}\n${lines.join('\n')}\n`;
}
