import { activationPatchingAsync, PATCH_SITES, quoteToken, SpError, type NeuronIntervention, type PatchingResult, type PatchSite } from '@sp/core';
import { patchingSpec, patchReportHtml } from '@sp/report';
import type { Command } from 'commander';
import { info, loadModel, parseIntOpt, printJson, setNeuronOption } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';

interface PatchCli {
  model?: string; clean?: string; corrupt?: string; answer?: string; wrong?: string; site: string; perPosition?: boolean;
  batchSize?: number; setNeuron?: NeuronIntervention[]; json?: boolean; html?: string; svg?: string; png?: string;
}

/** `sp patch`: activation patching, clean → corrupt, metric logit(answer) − logit(wrong) at the last position. */
export function registerPatch(program: Command): void {
  program
    .command('patch')
    .description('activation patching: the corrupt run with one clean activation patched in, for every layer × position (z: × head)')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--clean <text>', 'the clean prompt (its activations are patched in)')
    .option('--corrupt <text>', 'the corrupt prompt (the one that is run); same number of tokens as --clean')
    .option('--answer <token>', "the metric's answer: one token, e.g. ' is'")
    .option('--wrong <token>', "the metric's wrong answer: one token, e.g. ' are'")
    .option('--site <site>', `resid_pre | attn_out | mlp_out (layer × position) | z (layer × head, all positions)`, 'resid_pre')
    .option('--per-position', 'site z: one patch per layer × position × head (values[l][p][h]); no report yet')
    .option('--batch-size <n>', 'patches per forward pass (default 32; memory only, never the values)', parseIntOpt('--batch-size', 1))
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only: {site, clean_metric, corrupt_metric, layers, positions, heads?, values, tokens, answer, wrong, model}')
    .option('--html <file>', 'write a self-contained HTML report (layer × position heatmap)')
    .option('--svg <file>', 'write the heatmap as SVG')
    .option('--png <file>', 'write the heatmap as PNG')
    .action(async (o: PatchCli, cmd: Command) => {
      if (!(PATCH_SITES as readonly string[]).includes(o.site)) throw new SpError('BAD_INPUT', `--site must be ${PATCH_SITES.join(', ')} (got "${o.site}")`);
      for (const f of ['clean', 'corrupt', 'answer', 'wrong'] as const) if (o[f] === undefined) throw new SpError('BAD_INPUT', `give --${f}`);
      if (o.perPosition && (o.html || o.svg || o.png)) throw new SpError('BAD_INPUT', '--per-position results (values[l][p][h]) have no report yet; use --json or drop --per-position');
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        const t0 = performance.now();
        const r = await activationPatchingAsync(model, {
          clean: o.clean!, corrupt: o.corrupt!, answer: o.answer, wrong: o.wrong, site: o.site as PatchSite,
          perPosition: o.perPosition, batchSize: o.batchSize, interventions: o.setNeuron,
        });
        info(cmd, `patch: ${r.values.flat(2).length} patched runs in ${(performance.now() - t0).toFixed(0)} ms`);
        const out = { ...r, answer: o.answer!, wrong: o.wrong!, model: model.name };
        await writeReports(cmd, o, () => patchReportHtml(out as Parameters<typeof patchReportHtml>[0]), () => patchingSpec(out as Parameters<typeof patchingSpec>[0]));
        if (o.json) printJson(out);
        else process.stdout.write(patchTable(r, o.answer!, o.wrong!));
      } finally {
        model.dispose();
      }
    });
}

/** The patched metric per cell, layer 0 at the top as in TransformerLens' plots; columns = positions (z: heads). */
function patchTable(r: PatchingResult, answer: string, wrong: string): string {
  const w = 12;
  const cell = (s: string) => (s.length > w - 1 ? s.slice(0, w - 2) + '…' : s).padEnd(w);
  const num = (v: number) => cell(v.toFixed(3).padStart(8));
  const lines = [
    `activation patching (${r.site}): metric logit(${quoteToken(answer)}) − logit(${quoteToken(wrong)}) at the last position; clean ${r.clean_metric.toFixed(3)}, corrupt ${r.corrupt_metric.toFixed(3)}`,
  ];
  const posHead = cell('layer') + r.positions.map((p) => cell(`${p} ${quoteToken(r.tokens[p])}`)).join('');
  if (r.site !== 'z') {
    lines.push(posHead, ...r.layers.map((l, i) => cell(String(l)) + (r.values[i] as number[]).map(num).join('')));
  } else if (Array.isArray((r.values[0] as unknown[])[0])) {
    // per position: one block per layer, positions as rows, heads as columns
    for (const [i, l] of r.layers.entries()) {
      lines.push('', cell(`layer ${l}`) + r.heads!.map((h) => cell(`H${h}`)).join(''));
      (r.values[i] as number[][]).forEach((row, p) => lines.push(cell(`${p} ${quoteToken(r.tokens[p])}`) + row.map(num).join('')));
    }
  } else {
    lines.push(cell('layer') + r.heads!.map((h) => cell(`H${h}`)).join(''), ...r.layers.map((l, i) => cell(String(l)) + (r.values[i] as number[]).map(num).join('')));
  }
  return lines.map((x) => x.trimEnd()).join('\n') + '\n';
}
