import { logitLensAsync, quoteToken, SpError, topNeuronsAsync, type LensResult, type LensView, type NeuronIntervention, type NeuronsResult } from '@sp/core';
import { lensGridSpec, lensReportHtml, showToken } from '@sp/report';
import type { Command } from 'commander';
import { info, inputIds, loadModel, parseIntOpt, printJson, setNeuronOption } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';

interface LensCli {
  model?: string; ids?: string; prompt?: string; topk?: number; view: string; neurons?: number; position?: number;
  json?: boolean; html?: string; svg?: string; png?: string; setNeuron?: NeuronIntervention[];
}

/** `sp lens`: every layer's residual stream through ln_f and the unembedding (logit lens). */
export function registerLens(program: Command): void {
  program
    .command('lens')
    .description('logit lens: top-k next tokens at every layer and position (ln_f with per-layer statistics)')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--topk <k>', 'tokens per cell (default 5; the text table shows 1 unless --topk is given)', parseIntOpt('--topk', 1))
    .option('--view <rows>', 'layers (embeddings + after each block) | mid (after each attention) | all (both)', 'layers')
    .option('--neurons <k>', 'also list the k FF neurons writing most at --position', parseIntOpt('--neurons', 1))
    .option('--position <p>', 'position for --neurons (default -1: the last)', parseSignedInt('--position'))
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only')
    .option('--html <file>', 'write a self-contained HTML report (grid, per-layer statistics)')
    .option('--svg <file>', 'write the layer-prediction grid as SVG')
    .option('--png <file>', 'write the layer-prediction grid as PNG')
    .action(async (o: LensCli, cmd: Command) => {
      const view = parseView(o.view);
      if (o.position !== undefined && o.neurons === undefined) throw new SpError('BAD_INPUT', '--position needs --neurons (it picks the position whose FF neurons are listed)');
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        const ids = inputIds(model, o);
        const t0 = performance.now();
        const lens = await logitLensAsync(model, ids, { topk: o.topk ?? 5, view, interventions: o.setNeuron });
        info(cmd, `lens: ${lens.layers.length} rows × ${ids.length} positions in ${(performance.now() - t0).toFixed(0)} ms`);
        const neurons = o.neurons !== undefined ? await topNeuronsAsync(model, ids, { k: Math.min(o.neurons, model.config.nLayer * model.config.dMlp), position: o.position, interventions: o.setNeuron }) : undefined;
        await writeReports(cmd, o, () => lensReportHtml(lens, { neurons }), () => lensGridSpec(lens));
        if (o.json) printJson(neurons ? { ...lens, neuron_position: neurons.position, neurons: neurons.neurons } : lens);
        else process.stdout.write(lensTable(lens, o.topk ?? 1) + (neurons ? '\n' + neuronTable(neurons) : ''));
      } finally {
        model.dispose();
      }
    });
}

export function parseView(v: string): LensView {
  if (v !== 'layers' && v !== 'mid' && v !== 'all') throw new SpError('BAD_INPUT', `--view must be layers, mid or all (got "${v}")`);
  return v;
}

/** Integer option that may be negative (-1 = last position). */
export function parseSignedInt(name: string): (v: string) => number {
  return (v) => {
    if (!/^-?\d+$/.test(v.trim())) throw new SpError('BAD_INPUT', `${name} must be an integer (got "${v}")`);
    return Number(v);
  };
}

/** Rows (output at the top, as in the report) × positions: the top k tokens (one line each) and their probabilities. */
function lensTable(lens: LensResult, k: number): string {
  const w = 16;
  const cell = (s: string) => (s.length > w - 1 ? s.slice(0, w - 2) + '…' : s).padEnd(w);
  const head = cell('layer') + lens.tokens.map((t, p) => cell(`${p} ${quoteToken(t)}`)).join('');
  const prob = (p: number) => (p >= 0.01 ? p.toFixed(2) : p.toExponential(0));
  const rows = [...lens.layers].reverse().flatMap((l) =>
    Array.from({ length: Math.min(k, l.positions[0]?.top.length ?? 0) }, (_, i) =>
      cell(i === 0 ? l.label : '') + l.positions.map((c) => cell(`${showToken(c.top[i].token, 9)} ${prob(c.top[i].prob)}`)).join('')));
  return [head, ...rows].map((r) => r.trimEnd()).join('\n') + '\n';
}

function neuronTable(n: NeuronsResult): string {
  const lines = n.neurons.map((x) => `L${x.layer} #${x.index}`.padEnd(12) + `${x.score.toFixed(3).padStart(8)}  ${x.top.slice(0, 6).map((t) => quoteToken(t.token)).join(' ')}`);
  return `top FF neurons at position ${n.position} ${quoteToken(n.tokens[n.position])} (coefficient × ‖value‖, top tokens of E·v):\n${lines.join('\n')}\n`;
}
