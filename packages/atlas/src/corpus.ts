/**
 * The scan's corpus: plain text (one document per line) or JSONL (a `text` field per line, for
 * files ending in .jsonl), its sha256, and its tokenization into windows of at most `window` tokens.
 * A document's index is its 0-based line number (blank lines are empty documents).
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpError, type GPT2 } from '@sp/core';
import { sha256 } from './settings.js';

export interface Corpus {
  /** sha256 of the file's bytes. */
  digest: string;
  /** The file's base name (for display). */
  name: string;
  docs: string[];
}

export interface CorpusWindow {
  doc: number;
  /** Position of the window's first token inside its document. */
  offset: number;
  ids: number[];
}

/** Reads and checks a corpus file (missing file, not UTF-8, a bad JSONL line: one-line SpErrors). */
export function readCorpus(file: string): Corpus {
  if (!fs.existsSync(file)) throw new SpError('NOT_FOUND', `corpus ${file} not found`);
  if (!fs.statSync(file).isFile()) throw new SpError('BAD_INPUT', `corpus ${file} is not a file`);
  const bytes = fs.readFileSync(file);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SpError('BAD_FILE', `corpus ${file} is not UTF-8 text`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r?\n/);
  if (lines.length > 1 && lines.at(-1) === '') lines.pop(); // the final newline ends the last line, it opens no document
  const jsonl = /\.jsonl$/i.test(file);
  const docs = jsonl ? lines.map((l, i) => jsonlText(file, l, i + 1)) : lines;
  if (!docs.some((d) => d.trim() !== '')) throw new SpError('BAD_FILE', `corpus ${file} has no text`);
  return { digest: sha256(bytes), name: path.basename(file), docs };
}

function jsonlText(file: string, line: string, n: number): string {
  if (line.trim() === '') return '';
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    throw new SpError('BAD_FILE', `corpus ${file} line ${n}: not valid JSON`);
  }
  const t = (rec as { text?: unknown } | null)?.text;
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec) || typeof t !== 'string') {
    throw new SpError('BAD_FILE', `corpus ${file} line ${n}: expected an object with a string "text" field`);
  }
  return t;
}

/** Tokenizes every document (ids kept for the examples' context) and cuts it into windows. */
export function corpusWindows(model: GPT2, corpus: Pick<Corpus, 'docs'>, window: number): { windows: CorpusWindow[]; docIds: number[][] } {
  const docIds = corpus.docs.map((d) => (d === '' ? [] : model.encode(d)));
  const windows: CorpusWindow[] = [];
  docIds.forEach((ids, doc) => {
    for (let offset = 0; offset < ids.length; offset += window) windows.push({ doc, offset, ids: ids.slice(offset, offset + window) });
  });
  return { windows, docIds };
}
