/**
 * Export one scan: JSON Lines (one neuron per line, `sp atlas show --json`'s shape plus the scan
 * key) or Parquet (the same fields as columns; projection, samples and examples as JSON columns).
 * Rows stream from the store in (layer, index) order; a file is written to a temporary name and
 * renamed when complete, so a failed export leaves no half-written file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpError } from '@sp/core';
import { fileWriter, ParquetWriter } from 'hyparquet-writer';
import type { AtlasStore, NeuronRecord, ScanKey } from './types.js';

export type ExportFormat = 'jsonl' | 'parquet';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['jsonl', 'parquet'];

/** One exported row: the scan key then the NeuronRecord fields. */
export type ExportRow = { model_digest: string; settings_digest: string } & NeuronRecord;

export function exportRow(key: ScanKey, r: NeuronRecord): ExportRow {
  return { model_digest: key.modelDigest, settings_digest: key.settingsDigest, ...r };
}

/** Checks an output path before any work: its folder exists and it is not a folder. */
export function checkOutputPath(file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new SpError('NOT_FOUND', `output folder ${dir} does not exist`);
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new SpError('BAD_INPUT', `output ${file} is a directory`);
}

async function viaTemp<T>(file: string, write: (tmp: string) => Promise<T>): Promise<T> {
  checkOutputPath(file);
  const tmp = path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    const r = await write(tmp);
    fs.renameSync(tmp, file);
    return r;
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** JSON Lines to a stream (e.g. stdout), waiting for it to drain. Returns the rows written. */
export async function exportJsonlTo(store: AtlasStore, key: ScanKey, out: NodeJS.WritableStream): Promise<number> {
  let n = 0;
  for await (const r of store.allNeurons(key)) {
    n++;
    if (!out.write(JSON.stringify(exportRow(key, r)) + '\n')) await new Promise<void>((done) => out.once('drain', () => done()));
  }
  return n;
}

/** JSON Lines to a file (temp + rename). */
export async function exportJsonl(store: AtlasStore, key: ScanKey, file: string): Promise<number> {
  return viaTemp(file, async (tmp) => {
    const out = fs.createWriteStream(tmp);
    try {
      const n = await exportJsonlTo(store, key, out);
      await new Promise<void>((done, fail) => out.end((e?: Error | null) => (e ? fail(e) : done())));
      return n;
    } catch (e) {
      out.destroy();
      throw e;
    }
  });
}

const PARQUET_ROW_GROUP = 1000;

/** Parquet to a file (temp + rename), one row group per 1000 neurons. */
export async function exportParquet(store: AtlasStore, key: ScanKey, file: string): Promise<number> {
  return viaTemp(file, async (tmp) => {
    const schema = [
      { name: 'root', num_children: 10 },
      { name: 'model_digest', type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'REQUIRED' as const },
      { name: 'settings_digest', type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'REQUIRED' as const },
      { name: 'layer', type: 'INT32' as const, repetition_type: 'REQUIRED' as const },
      { name: 'index', type: 'INT32' as const, repetition_type: 'REQUIRED' as const },
      { name: 'kind', type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'REQUIRED' as const },
      { name: 'projection', type: 'BYTE_ARRAY' as const, converted_type: 'JSON' as const, repetition_type: 'REQUIRED' as const },
      { name: 'samples', type: 'BYTE_ARRAY' as const, converted_type: 'JSON' as const, repetition_type: 'REQUIRED' as const },
      { name: 'examples', type: 'BYTE_ARRAY' as const, converted_type: 'JSON' as const, repetition_type: 'REQUIRED' as const },
      { name: 'example_projection_overlap', type: 'DOUBLE' as const, repetition_type: 'OPTIONAL' as const },
      { name: 'probe_projection_overlap', type: 'DOUBLE' as const, repetition_type: 'OPTIONAL' as const },
    ];
    const writer = new ParquetWriter({ writer: fileWriter(tmp), schema, createdBy: 'sp atlas export' });
    let rows: NeuronRecord[] = [];
    let n = 0;
    const flush = async () => {
      if (!rows.length) return;
      await writer.write({
        rowGroupSize: rows.length,
        columnData: [
          { name: 'model_digest', data: rows.map(() => key.modelDigest) },
          { name: 'settings_digest', data: rows.map(() => key.settingsDigest) },
          { name: 'layer', data: rows.map((r) => r.layer) },
          { name: 'index', data: rows.map((r) => r.index) },
          { name: 'kind', data: rows.map((r) => r.kind) },
          { name: 'projection', data: rows.map((r) => r.projection) },
          { name: 'samples', data: rows.map((r) => r.samples) },
          { name: 'examples', data: rows.map((r) => r.examples) },
          { name: 'example_projection_overlap', data: rows.map((r) => r.scores.example_projection_overlap) },
          { name: 'probe_projection_overlap', data: rows.map((r) => r.scores.probe_projection_overlap) },
        ],
      });
      rows = [];
    };
    for await (const r of store.allNeurons(key)) {
      rows.push(r);
      n++;
      if (rows.length === PARQUET_ROW_GROUP) await flush();
    }
    await flush();
    await writer.finish();
    return n;
  });
}
