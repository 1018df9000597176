import {
  displayText, listPrompts, loadPrompt, quoteToken, readPromptFile, speakingProbe, SpError, SPEAKING_PROBE_DEFAULTS,
  type NeuronIntervention, type NeuronSpec, type SpeakingProbeResult, type ProjectedToken,
} from '@sp/core';
import { probeReportHtml } from '@sp/report';
import type { Command } from 'commander';
import { loadModel, parseFloatOpt, parseIntOpt, parseSeed, printJson, setNeuronOption, warnIgnoredSampling } from '../common.js';
import { checkReportFiles, writeReports } from '../report-files.js';

interface ProbeCli {
  model: string; prompt?: string; promptName?: string; promptFile?: string; promptsDir: string[]; listPrompts?: boolean;
  neuron: string[]; sourcePrompt?: string; sourceLayer?: number; sourcePosition: number; injectLayer?: number; scale?: number;
  samples?: number; greedy?: boolean; temperature?: number; topK?: number; topP?: number; repetitionPenalty?: number;
  maxNewTokens?: number; minLength?: number; minNewTokens?: number; stop: string[]; seed?: number; top: number; json?: boolean; html?: string;
  keepSpecialTokens?: boolean; setNeuron?: NeuronIntervention[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

/**
 * `sp probe`: a speaking probe. The neuron goes into the prompt as a virtual token; the model's
 * continuations are printed (the first one as it is generated) beside the neuron's embedding-space view.
 */
export function registerProbe(program: Command): void {
  const d = SPEAKING_PROBE_DEFAULTS;
  program
    .command('probe')
    .description('speaking probe: put a neuron into a prompt as a virtual token and let the model describe it')
    .option('--model <dir|name>', 'model directory or preset name', 'gpt2')
    .option('--prompt <template>', 'template with <neuron>, <neuron2>, … or <param_L_J> (FF key J of layer L)')
    .option('--prompt-name <name>', 'a prompt from the library (see --list-prompts); default term-means')
    .option('--prompt-file <path>', 'read the template from a file')
    .option('--prompts-dir <dir>', 'extra prompt library directory of NAME.txt files (repeatable; also $SP_PROMPTS_DIR)', collect, [])
    .option('--list-prompts', 'list the prompt library and exit')
    .option('--neuron <spec>', 'L,J | key:L,J | value:L,J | file:PATH(.json|.npy|.safetensors[#name]) | expr:\'0.9*google+show\' (repeatable: <neuron>, <neuron2>, …)', collect, [])
    .option('--source-prompt <text>', 'neuron = hidden state of this prompt (Patchscopes / SelfIE)')
    .option('--source-layer <L>', 'with --source-prompt: residual stream entering block L (n_layer = last output)', parseIntOpt('--source-layer'))
    .option('--source-position <P>', 'with --source-prompt: token position (negative from the end)', parseIntOpt('--source-position', -1e9), -1)
    .option('--inject-layer <k>', 'inject into the residual stream entering block k instead of the token embedding (hidden states default to their source layer)', parseIntOpt('--inject-layer'))
    .option('--scale <c>', 'multiply the neuron vector(s) by c', parseFloatOpt('--scale'))
    .option('--samples <n>', `number of samples (default ${d.samples}; 1 with --greedy)`, parseIntOpt('--samples', 1))
    .option('--greedy', 'greedy decoding (deterministic, one sample)')
    .option('--temperature <t>', `sampling temperature (default ${d.temperature})`, parseFloatOpt('--temperature'))
    .option('--top-k <k>', `top-k filter, 0 = off (default ${d.topK}, as HF)`, parseIntOpt('--top-k'))
    .option('--top-p <p>', `nucleus filter in (0, 1] (default ${d.topP})`, parseFloatOpt('--top-p'))
    .option('--repetition-penalty <r>', `HF repetition penalty (default ${d.repetitionPenalty})`, parseFloatOpt('--repetition-penalty'))
    .option('--max-new-tokens <n>', `tokens per sample (default ${d.maxNewTokens})`, parseIntOpt('--max-new-tokens'))
    .option('--min-length <n>', `no EOS before the sequence (prompt included) has n tokens (default ${d.minLength})`, parseIntOpt('--min-length'))
    .option('--min-new-tokens <n>', `no EOS before n new tokens (default ${d.minNewTokens})`, parseIntOpt('--min-new-tokens'))
    .option('--stop <string>', 'stop a sample once its text contains this (repeatable)', collect, [])
    .option('--seed <n>', 'random seed, 0..4294967295 (sampling is reproducible with it)', parseSeed)
    .option('--top <n>', 'tokens in the embedding-space view (0 = none)', parseIntOpt('--top'), d.projectionTop)
    .option('--keep-special-tokens', 'keep <|endoftext|> in the sample texts (default: dropped, as skip_special_tokens=True; ids keep it)')
    .addOption(setNeuronOption())
    .option('--json', 'print JSON only: {prompt_ids, neuron_positions, samples:[{ids, text, finish}], projection:{top}, …}')
    .option('--html <file>', 'also write a self-contained HTML report (result card)')
    .action(async (o: ProbeCli, cmd: Command) => {
      if (o.listPrompts) return listLibrary(o);
      const template = pickTemplate(o);
      const neurons = neuronSpecs(o);
      if (o.greedy && o.samples !== undefined && o.samples > 1) throw new SpError('BAD_INPUT', `--greedy gives one sample (got --samples ${o.samples})`);
      if (!o.greedy && o.temperature !== undefined && !(o.temperature > 0)) {
        throw new SpError('BAD_INPUT', `--temperature must be > 0 when sampling (got ${o.temperature}); use --greedy for deterministic output`);
      }
      if (o.greedy) warnIgnoredSampling(o, 'with --greedy');
      checkReportFiles(o); // before the work: a bad output path must not cost the run
      const { model } = await loadModel(cmd, o.model);
      try {
        let streamed = false; // the template is printed with the first token, so errors come out alone
        const r = await speakingProbe(model, {
          prompt: template,
          neurons,
          samples: o.samples,
          greedy: o.greedy,
          temperature: o.temperature,
          topK: o.topK,
          topP: o.topP,
          repetitionPenalty: o.repetitionPenalty,
          maxNewTokens: o.maxNewTokens,
          minLength: o.minLength,
          minNewTokens: o.minNewTokens,
          stopStrings: o.stop.length ? o.stop : undefined,
          seed: o.seed,
          skipSpecialTokens: !o.keepSpecialTokens,
          scale: o.scale,
          injectLayer: o.injectLayer,
          projectionTop: o.top,
          interventions: o.setNeuron,
          // The first sample streams as it is generated; the others print when the batch is done.
          onToken: o.json ? undefined : (ev) => {
            if (ev.sequence !== 0) return;
            if (!streamed) process.stdout.write(displayText(template));
            streamed = true;
            process.stdout.write(displayText(ev.text)); // no raw ESC etc. to the terminal
          },
        });
        await writeReports(cmd, o, () => probeReportHtml(r));
        if (o.json) printJson(r);
        else printHuman(r, streamed);
      } finally {
        model.dispose();
      }
    });
}

function pickTemplate(o: ProbeCli): string {
  const given = [o.prompt, o.promptName, o.promptFile].filter((x) => x !== undefined).length;
  if (given > 1) throw new SpError('BAD_INPUT', 'give one of --prompt, --prompt-name, --prompt-file');
  if (o.prompt !== undefined) return o.prompt;
  if (o.promptFile !== undefined) return readPromptFile(o.promptFile);
  return loadPrompt(o.promptName ?? 'term-means', o.promptsDir).template;
}

function neuronSpecs(o: ProbeCli): NeuronSpec[] {
  if (o.sourcePrompt === undefined) {
    if (o.sourceLayer !== undefined) throw new SpError('BAD_INPUT', '--source-layer needs --source-prompt');
    return o.neuron;
  }
  if (o.neuron.length) throw new SpError('BAD_INPUT', 'give --neuron or --source-prompt, not both');
  if (o.sourceLayer === undefined) throw new SpError('BAD_INPUT', '--source-prompt needs --source-layer');
  return [{ type: 'hidden', prompt: o.sourcePrompt, layer: o.sourceLayer, position: o.sourcePosition }];
}

function listLibrary(o: ProbeCli): void {
  const all = listPrompts(o.promptsDir);
  if (o.json) return printJson(all.map(({ name, template, description, source, path, bundled }) => ({ name, template, description, source, path, bundled })));
  const w = Math.max(...all.map((p) => p.name.length));
  for (const p of all) {
    const first = p.template.split('\n');
    const shown = first.length > 1 ? `${first[first.length - 1]}  (${first.length} lines)` : first[0];
    process.stdout.write(`${p.name.padEnd(w)}  ${quoteToken(shown)}${p.bundled ? '' : `  [${p.path}]`}\n`);
  }
}

const tokens = (list: ProjectedToken[]) => list.map((t) => quoteToken(t.token)).join(' ');

function printHuman(r: SpeakingProbeResult, streamed: boolean): void {
  const out = (s: string) => process.stdout.write(s);
  r.samples.forEach((s, i) => {
    if (i === 0) out(streamed ? '' : displayText(r.prompt + s.text));
    else out(`\n${'~'.repeat(60)}\n${displayText(r.prompt + s.text)}`);
  });
  out('\n\n');
  out(`prompt ids [${r.prompt_ids.join(', ')}], virtual position${r.neuron_positions.length > 1 ? 's' : ''} ${r.neuron_positions.join(', ')}\n`);
  const o = r.options;
  out(o.do_sample
    ? `${o.samples} sample${o.samples > 1 ? 's' : ''}: temperature ${o.temperature}, top-k ${o.top_k}, top-p ${o.top_p}, repetition penalty ${o.repetition_penalty}, seed ${o.seed}\n`
    : `greedy, repetition penalty ${o.repetition_penalty}\n`);
  for (const n of r.neurons) {
    const how = n.inject_layer === null ? 'as the token embedding' : `injected entering block ${n.inject_layer}`;
    out(`\n${n.tags.join(' ')} = ${n.label}  (‖v‖ = ${n.norm.toFixed(4)}, ${how})\n`);
    if (n.projection) {
      out(`  v·Eᵀ top:            ${tokens(n.projection.top)}\n`);
      out(`  v·Eᵀ top (unit E):   ${tokens(n.projection.top_normalized)}\n`);
    }
  }
  process.stderr.write(`[${r.timing.new_tokens} tokens, ${r.timing.tokens_per_s.toFixed(1)} tokens/s]\n`);
}
