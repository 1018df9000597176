import { attentionPatternsAsync, quoteToken, type AttentionResult, type NeuronIntervention } from '@sp/core';
import { attentionReportHtml, attentionSpec } from '@sp/report';
import type { Command } from 'commander';
import { info, inputIds, loadModel, parseIntOpt, printJson, setNeuronOption } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';

interface AttentionCli {
  model?: string; ids?: string; prompt?: string; layer?: number; json?: boolean; html?: string; svg?: string; png?: string;
  setNeuron?: NeuronIntervention[];
}

/** `sp attention`: every head's attention pattern (blocks.{l}.attn.hook_pattern), as a heatmap grid or JSON. */
export function registerAttention(program: Command): void {
  program
    .command('attention')
    .description("every head's attention pattern (query × key), as an HTML/SVG/PNG heatmap grid or JSON")
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--layer <l>', 'only this block (default: every block; the SVG/PNG chart shows one block, layer 0 without --layer)', parseIntOpt('--layer', 0))
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only: {model, ids, tokens, layers: [{layer, heads: [h][q][k]}]}')
    .option('--html <file>', 'write a self-contained HTML report (a section per layer, a heatmap per head)')
    .option('--svg <file>', "write one layer's heads as SVG")
    .option('--png <file>', "write one layer's heads as PNG")
    .action(async (o: AttentionCli, cmd: Command) => {
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        const ids = inputIds(model, o);
        const t0 = performance.now();
        const r = await attentionPatternsAsync(model, ids, { layers: o.layer === undefined ? undefined : [o.layer], interventions: o.setNeuron });
        info(cmd, `attention: ${r.layers.length} layer(s) × ${model.config.nHead} heads × ${ids.length}² in ${(performance.now() - t0).toFixed(0)} ms`);
        await writeReports(cmd, o, () => attentionReportHtml(r), () => attentionSpec(r, { layer: r.layers[0].layer }));
        if (o.json) printJson(r);
        else if (!o.html && !o.svg && !o.png) process.stdout.write(attentionTable(r));
      } finally {
        model.dispose();
      }
    });
}

/** Per head: where the last position looks (its three largest weights). */
function attentionTable(r: AttentionResult): string {
  const q = r.tokens.length - 1;
  const lines = r.layers.flatMap((L) => L.heads.map((head, h) => {
    const top = head[q].map((v, k) => [v, k] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3);
    return `L${L.layer}.H${h}`.padEnd(9) + top.map(([v, k]) => `${k} ${quoteToken(r.tokens[k])} ${v.toFixed(2)}`).join('   ');
  }));
  return `attention of the last position ${q} ${quoteToken(r.tokens[q])} (top 3 keys per head; --html for every query):\n${lines.join('\n')}\n`;
}
