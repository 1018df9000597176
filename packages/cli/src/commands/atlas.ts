/**
 * `sp atlas show|search|export`: read a store written by `sp scan`. The `atlas` command is
 * returned by registerAtlas so more subcommands (serve) attach to it.
 */
import { displayText, quoteToken, SpError } from '@sp/core/light';
import type { AtlasStore, NeuronKind, ScanInfo } from '@sp/atlas';
import type { Command } from 'commander';
import { parseFloatOpt, parseIntOpt, printJson } from '../common.js';
import { registerAtlasServe } from './atlas-serve.js';

interface StoreCli { store?: string; scan?: string; kind?: string; json?: boolean }

/** Opens an existing store for reading (a missing file is an error, not a new empty store). */
export async function openStoreForReading(o: StoreCli): Promise<AtlasStore> {
  if (!o.store) throw new SpError('BAD_INPUT', '--store <path> is required');
  const { openStore } = await import('@sp/atlas');
  return openStore(o.store, { create: false });
}

export function parseKind(v: string | undefined): NeuronKind | undefined {
  if (v === undefined) return undefined;
  if (v !== 'key' && v !== 'value') throw new SpError('BAD_INPUT', `--kind must be key or value (got "${v}")`);
  return v;
}

/**
 * The scan `--scan PREFIX` names (a settings digest prefix; a model digest prefix also works), or
 * with `required` the only scan of the store; undefined when not required and not given (all scans).
 */
export async function pickScan(store: AtlasStore, prefix: string | undefined, required: boolean): Promise<ScanInfo | undefined> {
  const scans = await store.scans();
  if (prefix !== undefined) {
    const m = scans.filter((s) => s.settingsDigest.startsWith(prefix) || s.modelDigest.startsWith(prefix));
    if (m.length === 0) throw new SpError('NOT_FOUND', `no scan matches --scan ${prefix} (scans: ${scans.map((s) => s.settingsDigest.slice(0, 12)).join(', ') || 'none'})`);
    if (m.length > 1) throw new SpError('BAD_INPUT', `--scan ${prefix} matches ${m.length} scans; give more of the digest`);
    return m[0];
  }
  if (!required) return undefined;
  if (scans.length === 0) throw new SpError('NOT_FOUND', 'the store holds no scan');
  if (scans.length > 1) throw new SpError('BAD_INPUT', `the store holds ${scans.length} scans: pick one with --scan (${scans.map((s) => `${s.settingsDigest.slice(0, 12)} ${s.settings.kind} ${s.model}`).join('; ')})`);
  return scans[0];
}

const storeOptions = (c: Command) =>
  c.option('--store <path>', 'SQLite file written by sp scan')
    .option('--scan <digest>', 'which scan (a settings digest prefix; default: the latest / the only one)')
    .option('--kind <key|value>', 'only neurons of this kind');

export function registerAtlas(program: Command): Command {
  const atlas = program.command('atlas').description('read a neuron atlas written by sp scan: show, search, export');

  storeOptions(atlas.command('show').description('one neuron: projection, probe samples, max-activating examples, agreement scores'))
    .option('--neuron <L,J>', 'layer and index, e.g. 10,8')
    .option('--top <n>', 'tokens per projection list in the text view', parseIntOpt('--top', 1), 20)
    .option('--json', 'print the record: {layer, index, kind, projection:{top, bottom, …}, samples, examples, scores}')
    .action(async (o: StoreCli & { neuron?: string; top: number }) => {
      const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(o.neuron ?? '');
      if (!m) throw new SpError('BAD_INPUT', `--neuron must be LAYER,INDEX (e.g. 10,8)${o.neuron === undefined ? '' : `, got "${o.neuron}"`}`);
      const kind = parseKind(o.kind);
      const store = await openStoreForReading(o);
      try {
        const scan = await pickScan(store, o.scan, false);
        const r = await store.neuron(Number(m[1]), Number(m[2]), { kind, ...(scan ? { modelDigest: scan.modelDigest, settingsDigest: scan.settingsDigest } : {}) });
        if (!r) throw new SpError('NOT_FOUND', `neuron ${m[1]},${m[2]}${kind ? ` (${kind})` : ''} is not in ${o.store}`);
        if (o.json) return printJson(r);
        const list = (ts: Array<{ token: string; score: number }>) => ts.slice(0, o.top).map((t) => `${quoteToken(t.token)} ${t.score.toFixed(3)}`).join(', ');
        const out = [
          `${r.kind} L${r.layer} #${r.index}`,
          `  top:              ${list(r.projection.top)}`,
          `  top (normalised): ${list(r.projection.top_normalized)}`,
          `  bottom:           ${list(r.projection.bottom)}`,
          ...(r.samples.length ? ['  samples:', ...r.samples.map((s) => `    ${displayText(s.text)}`)] : []),
          ...(r.examples.length ? ['  examples:', ...r.examples.map((e) => `    ${e.activation.toFixed(3)}  doc ${e.doc} pos ${e.position}: ${e.context.map((t, i) => (i === e.center ? `[[${displayText(t)}]]` : displayText(t))).join('')}`)] : []),
          `  example_projection_overlap: ${r.scores.example_projection_overlap ?? '-'}   probe_projection_overlap: ${r.scores.probe_projection_overlap ?? '-'}`,
        ];
        process.stdout.write(out.join('\n') + '\n');
      } finally {
        await store.close();
      }
    });

  storeOptions(atlas.command('search').description('neurons whose projection top list holds a token (best first: lowest rank, then highest score), or free text'))
    .option('--token <string>', "exact token string, e.g. ' Japan' (leading space included)")
    .option('--text <string>', 'free text matched against top tokens and sample texts (case-insensitive)')
    .option('--layer <L>', 'only this layer', parseIntOpt('--layer'))
    .option('--min-example-overlap <x>', 'example_projection_overlap ≥ x', parseFloatOpt('--min-example-overlap'))
    .option('--min-probe-overlap <x>', 'probe_projection_overlap ≥ x', parseFloatOpt('--min-probe-overlap'))
    .option('--sort <by>', 'rank | layer | example_projection_overlap | probe_projection_overlap')
    .option('--limit <n>', 'hits to print', parseIntOpt('--limit', 1), 20)
    .option('--offset <n>', 'skip this many hits', parseIntOpt('--offset', 0), 0)
    .option('--json', 'print {total, hits:[{layer, index, kind, rank, score, scores, top}]}')
    .action(async (o: StoreCli & { token?: string; text?: string; layer?: number; minExampleOverlap?: number; minProbeOverlap?: number; sort?: string; limit: number; offset: number }) => {
      if (o.token === undefined && o.text === undefined) throw new SpError('BAD_INPUT', 'give --token or --text');
      const sorts = ['rank', 'layer', 'example_projection_overlap', 'probe_projection_overlap'];
      if (o.sort !== undefined && !sorts.includes(o.sort)) throw new SpError('BAD_INPUT', `--sort must be one of ${sorts.join(', ')} (got "${o.sort}")`);
      const kind = parseKind(o.kind);
      const store = await openStoreForReading(o);
      try {
        const scan = await pickScan(store, o.scan, false);
        const r = await store.search({
          token: o.token, text: o.text, layer: o.layer, kind, minExampleOverlap: o.minExampleOverlap, minProbeOverlap: o.minProbeOverlap,
          sort: o.sort as 'rank' | undefined, limit: o.limit, offset: o.offset,
          ...(scan ? { modelDigest: scan.modelDigest, settingsDigest: scan.settingsDigest } : {}),
        });
        if (o.json) return printJson(r);
        const lines = r.hits.map((h) => `${h.kind} L${h.layer} #${h.index}${h.rank === null ? '' : `  rank ${h.rank} score ${h.score!.toFixed(3)}`}  ${h.top.map(quoteToken).join(' ')}`);
        process.stdout.write([...lines, `${r.total} neuron${r.total === 1 ? '' : 's'}${r.total > r.hits.length ? ` (${r.hits.length} shown)` : ''}`].join('\n') + '\n');
      } finally {
        await store.close();
      }
    });

  atlas.command('export').description('every neuron of one scan as JSON Lines or Parquet, in (layer, index) order')
    .option('--store <path>', 'SQLite file written by sp scan')
    .option('--scan <digest>', 'which scan (needed when the store holds several)')
    .option('--format <jsonl|parquet>', 'output format', 'jsonl')
    .option('--out <file>', 'output file (written via a temporary name; jsonl default: stdout)')
    .action(async (o: StoreCli & { format: string; out?: string }) => {
      const ex = await import('@sp/atlas');
      if (!ex.EXPORT_FORMATS.includes(o.format as 'jsonl')) throw new SpError('BAD_INPUT', `--format must be jsonl or parquet (got "${o.format}")`);
      if (o.format === 'parquet' && o.out === undefined) throw new SpError('BAD_INPUT', '--format parquet needs --out <file>');
      if (o.out !== undefined) ex.checkOutputPath(o.out);
      const store = await openStoreForReading(o);
      try {
        const scan = (await pickScan(store, o.scan, true))!;
        const key = { modelDigest: scan.modelDigest, settingsDigest: scan.settingsDigest };
        const n = o.out === undefined ? await ex.exportJsonlTo(store, key, process.stdout)
          : o.format === 'parquet' ? await ex.exportParquet(store, key, o.out) : await ex.exportJsonl(store, key, o.out);
        if (o.out !== undefined) process.stderr.write(`wrote ${n} neurons to ${o.out}\n`);
      } finally {
        await store.close();
      }
    });

  registerAtlasServe(atlas);
  return atlas;
}
