import { logitLens, SpError, topNeurons, type LensResult, type LensView, type NeuronsResult } from '@sp/core';
import { lensGridSpec, lensReportHtml, showToken } from '@sp/report';
import type { Command } from 'commander';
import { info, inputIds, loadModel, parseIntOpt, printJson } from '../common.js';
import { writeReports } from '../report-files.js';

interface LensCli {
  model?: string; ids?: string; prompt?: string; topk: number; view: string; neurons?: number; position?: number;
  json?: boolean; html?: string; svg?: string; png?: string;
}

/** `sp lens`: every layer's residual stream through ln_f and the unembedding (logit lens). */
export function registerLens(program: Command): void {
  program
    .command('lens')
    .description('logit lens: top-k next tokens at every layer and position (ln_f with per-layer statistics)')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--topk <k>', 'tokens per cell', parseIntOpt('--topk', 1), 5)
    .option('--view <rows>', 'layers (embeddings + after each block) | mid (after each attention) | all (both)', 'layers')
    .option('--neurons <k>', 'also list the k FF neurons writing most at --position', parseIntOpt('--neurons', 1))
    .option('--position <p>', 'position for --neurons (default -1: the last)', parseSignedInt('--position'))
    .option('--json', 'print JSON only')
    .option('--html <file>', 'write a self-contained HTML report (grid, per-layer statistics)')
    .option('--svg <file>', 'write the layer-prediction grid as SVG')
    .option('--png <file>', 'write the layer-prediction grid as PNG')
    .action(async (o: LensCli, cmd: Command) => {
      const view = parseView(o.view);
      if (o.position !== undefined && o.neurons === undefined) throw new SpError('BAD_INPUT', '--position needs --neurons (it picks the position whose FF neurons are listed)');
      const { model } = await loadModel(cmd, o.model);
      try {
        const ids = inputIds(model, o);
        const t0 = performance.now();
        const lens = logitLens(model, ids, { topk: o.topk, view });
        info(cmd, `lens: ${lens.layers.length} rows × ${ids.length} positions in ${(performance.now() - t0).toFixed(0)} ms`);
        const neurons = o.neurons !== undefined ? topNeurons(model, ids, { k: Math.min(o.neurons, model.config.nLayer * model.config.dMlp), position: o.position }) : undefined;
        await writeReports(cmd, o, () => lensReportHtml(lens, { neurons }), () => lensGridSpec(lens));
        if (o.json) printJson(neurons ? { ...lens, neuron_position: neurons.position, neurons: neurons.neurons } : lens);
        else process.stdout.write(lensTable(lens) + (neurons ? '\n' + neuronTable(neurons) : ''));
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

/** Rows (output at the top, as in the report) × positions: top-1 token and its probability. */
function lensTable(lens: LensResult): string {
  const w = 16;
  const cell = (s: string) => (s.length > w - 1 ? s.slice(0, w - 2) + '…' : s).padEnd(w);
  const head = cell('layer') + lens.tokens.map((t, p) => cell(`${p} ${JSON.stringify(t)}`)).join('');
  const rows = [...lens.layers].reverse().map((l) => cell(l.label) + l.positions.map((c) => cell(`${showToken(c.top[0].token, 9)} ${c.max_prob >= 0.01 ? c.max_prob.toFixed(2) : c.max_prob.toExponential(0)}`)).join(''));
  return [head, ...rows].map((r) => r.trimEnd()).join('\n') + '\n';
}

function neuronTable(n: NeuronsResult): string {
  const lines = n.neurons.map((x) => `L${x.layer} #${x.index}`.padEnd(12) + `${x.score.toFixed(3).padStart(8)}  ${x.top.slice(0, 6).map((t) => JSON.stringify(t.token)).join(' ')}`);
  return `top FF neurons at position ${n.position} ${JSON.stringify(n.tokens[n.position])} (coefficient × ‖value‖, top tokens of E·v):\n${lines.join('\n')}\n`;
}
