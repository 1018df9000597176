import { ATTRIBUTION_METHODS, inputAttributionAsync, quoteToken, SpError, type AttributionMethod, type AttributionResult, type NeuronIntervention } from '@sp/core';
import { attributionSpec, attrReportHtml } from '@sp/report';
import type { Command } from 'commander';
import { info, inputIds, loadModel, parseIntOpt, printJson, setNeuronOption } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';
import { parseSignedInt } from './lens.js';

interface AttrCli {
  model?: string; ids?: string; prompt?: string; targetToken?: string; targetId?: number; position?: number; method?: string;
  steps?: number; batchSize?: number; normalize?: boolean; setNeuron?: NeuronIntervention[]; json?: boolean; html?: string; svg?: string; png?: string;
}

/** `sp attr`: gradient-based attribution of one logit to the input tokens (Captum / Ecco saliency). */
export function registerAttr(program: Command): void {
  program
    .command('attr')
    .description("input attribution: each input token's share of a target token's logit (gradient, gradient × input, integrated gradients)")
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--target-token <text>', "the token whose logit is attributed (exactly one token, e.g. ' is')")
    .option('--target-id <id>', 'the same, by id', parseIntOpt('--target-id', 0))
    .option('--position <p>', 'position whose logit is read (default -1: the last)', parseSignedInt('--position'))
    .option('--method <m>', `${ATTRIBUTION_METHODS.join(' | ')} (default grad-x-input)`)
    .option('--steps <n>', 'integrated-gradients steps (default 64)', parseIntOpt('--steps', 1))
    .option('--batch-size <n>', 'integrated-gradients steps per forward/backward pass (default 16)', parseIntOpt('--batch-size', 1))
    .option('--normalize', "Ecco's view: |attribution| / Σ|attribution| (non-negative, sums to 1)")
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only: {model, ids, tokens, target_id, target_token, position, method, target_value, attributions, normalize, steps?}')
    .option('--html <file>', 'write a self-contained HTML report (token strip coloured by attribution)')
    .option('--svg <file>', 'write the token strip as SVG')
    .option('--png <file>', 'write the token strip as PNG')
    .action(async (o: AttrCli, cmd: Command) => {
      const method = parseMethod(o.method);
      if (o.targetToken === undefined && o.targetId === undefined) throw new SpError('BAD_INPUT', 'sp attr needs --target-token TEXT or --target-id N');
      if (o.steps !== undefined && method !== 'integrated-gradients') throw new SpError('BAD_INPUT', '--steps needs --method integrated-gradients');
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        const ids = inputIds(model, o);
        const t0 = performance.now();
        const r = await inputAttributionAsync(model, ids, {
          targetToken: o.targetToken, targetId: o.targetId, position: o.position, method, steps: o.steps, batchSize: o.batchSize,
          normalize: o.normalize, interventions: o.setNeuron,
        });
        info(cmd, `attr: ${method} over ${ids.length} positions in ${(performance.now() - t0).toFixed(0)} ms`);
        const out = { model: model.name, ...r };
        await writeReports(cmd, o, () => attrReportHtml(out), () => attributionSpec(out));
        if (o.json) printJson(out);
        else process.stdout.write(attrTable(r));
      } finally {
        model.dispose();
      }
    });
}

function parseMethod(m: string | undefined): AttributionMethod {
  if (m === undefined) return 'grad-x-input';
  if (!(ATTRIBUTION_METHODS as readonly string[]).includes(m)) throw new SpError('BAD_INPUT', `--method must be ${ATTRIBUTION_METHODS.join(', ')} (got "${m}")`);
  return m as AttributionMethod;
}

/** One row per input position: token, id, attribution and a bar of |attribution|. */
function attrTable(r: AttributionResult): string {
  const m = Math.max(...r.attributions.map(Math.abs)) || 1;
  const rows = r.tokens.map((t, p) => {
    const a = r.attributions[p];
    const bar = (a < 0 ? '-' : '+').repeat(Math.round((20 * Math.abs(a)) / m));
    return `${String(p).padStart(4)}  ${quoteToken(t).padEnd(16)}${String(r.ids[p]).padStart(7)}${a.toFixed(5).padStart(12)}  ${bar}`;
  });
  const sum = r.attributions.reduce((s, v) => s + v, 0);
  return `${r.method}${r.normalize ? ' (normalised)' : ''} attribution of logit(${quoteToken(r.target_token)}) = ${r.target_value.toFixed(4)} at position ${r.position} ${quoteToken(r.tokens[r.position])}`
    + `${r.steps !== undefined ? `, ${r.steps} steps` : ''}:\n${'pos'.padStart(4)}  ${'token'.padEnd(16)}${'id'.padStart(7)}${'value'.padStart(12)}\n${rows.join('\n')}\n`
    + `${''.padStart(4)}  ${'sum'.padEnd(16)}${''.padStart(7)}${sum.toFixed(5).padStart(12)}\n`;
}
