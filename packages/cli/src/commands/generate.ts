import { displayText, generate, GENERATION_DEFAULTS, randomSeed, SpError, type NeuronIntervention } from '@sp/core';
import type { Command } from 'commander';
import { inputIds, loadModel, parseFloatOpt, parseIntOpt, parseSeed, printJson, setNeuronOption, warnIgnoredSampling } from '../common.js';

interface GenerateCli {
  model?: string; ids?: string; prompt?: string; maxNewTokens: number; greedy?: boolean; sample?: boolean;
  temperature?: number; topK?: number; topP?: number; repetitionPenalty?: number; seed?: number; json?: boolean;
  skipSpecialTokens?: boolean; setNeuron?: NeuronIntervention[];
}

/** `sp generate`: continue a prompt with the KV cache; prints tokens as they come (human form). */
export function registerGenerate(program: Command): void {
  const d = GENERATION_DEFAULTS;
  program
    .command('generate')
    .description('continue a prompt (greedy by default; --sample for sampling)')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--ids <ids>', 'comma-separated token ids')
    .option('--prompt <text>', 'prompt text')
    .option('--max-new-tokens <n>', 'tokens to generate', parseIntOpt('--max-new-tokens'), d.maxNewTokens)
    .option('--greedy', 'greedy decoding (default)')
    .option('--sample', 'sample instead of greedy')
    .option('--temperature <t>', `sampling temperature (> 0, default ${d.temperature})`, parseFloatOpt('--temperature'))
    .option('--top-k <k>', `top-k filter (0 = off; default ${d.topK}, as HF)`, parseIntOpt('--top-k'))
    .option('--top-p <p>', `nucleus filter in (0, 1] (default ${d.topP} = off)`, parseFloatOpt('--top-p'))
    .option('--repetition-penalty <r>', `HF repetition penalty (> 0, 1 = off; default ${d.repetitionPenalty})`, parseFloatOpt('--repetition-penalty'))
    .option('--seed <n>', 'random seed for sampling, 0..4294967295 (default: a random one, printed on stderr)', parseSeed)
    .option('--skip-special-tokens', 'drop <|endoftext|> from the printed text (HF skip_special_tokens=True; ids keep it)')
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only: {prompt_ids, ids, text, finish_reason, seed, timing}')
    .action(async (o: GenerateCli, cmd: Command) => {
      if (o.greedy && o.sample) throw new SpError('BAD_INPUT', 'give --greedy or --sample, not both');
      if (o.temperature !== undefined && o.temperature <= 0 && o.sample) throw new SpError('BAD_INPUT', `--temperature must be > 0 (got ${o.temperature})`);
      if (!o.sample) warnIgnoredSampling(o, 'without --sample (greedy decoding)');
      // Without --seed a sampled run picks one and says which, so it can be repeated.
      const seed = o.sample ? o.seed ?? randomSeed() : undefined;
      if (o.sample && o.seed === undefined) process.stderr.write(`seed: ${seed}\n`);
      const { model, loadMs } = await loadModel(cmd, o.model);
      try {
        const ids = inputIds(model, o);
        const r = await generate(model, ids, {
          maxNewTokens: o.maxNewTokens,
          doSample: !!o.sample,
          temperature: o.temperature,
          topK: o.topK,
          topP: o.topP,
          repetitionPenalty: o.repetitionPenalty,
          seed,
          skipSpecialTokens: o.skipSpecialTokens,
          interventions: o.setNeuron,
          onToken: o.json ? undefined : (ev) => process.stdout.write(displayText(ev.text)), // no raw ESC etc. to the terminal
        });
        const timing = { load_ms: round(loadMs), prefill_ms: round(r.timing.prefillMs), decode_ms: round(r.timing.decodeMs), tokens_per_s: round(r.timing.newTokens / (r.timing.decodeMs / 1000 || Infinity)) };
        if (o.json) printJson({ prompt_ids: ids, ids: r.newTokens[0], text: r.texts[0], finish_reason: r.finishReasons[0], seed: seed ?? null, timing });
        else process.stdout.write(`\n`), process.stderr.write(`[${r.timing.newTokens} tokens, prefill ${timing.prefill_ms} ms, ${timing.tokens_per_s} tokens/s]\n`);
      } finally {
        model.dispose();
      }
    });
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
