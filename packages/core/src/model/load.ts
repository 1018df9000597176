import { initBackend } from '../backend/index.js';
import { GPT2Tokenizer } from '../tokenizer/index.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { resolveModel, type DownloadOptions } from '../weights/hub.js';
import { GPT2 } from './gpt2.js';

export interface LoadOptions extends DownloadOptions {
  /** 'wasm' | 'cpu' | 'tensorflow'; default: $SP_BACKEND, else the best one installed. */
  backend?: string;
  /** Download a missing preset from the Hugging Face hub (default true). */
  download?: boolean;
  /**
   * Load weights that are NaN or ±Infinity (default false: the load fails with a NONFINITE_WEIGHTS
   * SpError naming the tensor, e.g. after a bad fp16 conversion).
   */
  allowNonfinite?: boolean;
}

/**
 * Load GPT-2 from a preset name (`gpt2`, `gpt2-medium`, ...; found in $SP_WEIGHTS_DIR, the repo's
 * weights/ or the user cache, else downloaded) or from an HF-layout directory.
 */
export async function gpt2(nameOrDir = 'gpt2', opts: LoadOptions = {}): Promise<GPT2> {
  await initBackend(opts.backend);
  const dir = await resolveModel(nameOrDir, opts);
  const ckpt = Checkpoint.open(dir);
  try {
    const tokenizer = await GPT2Tokenizer.fromDir(dir, ckpt.config.dVocab);
    return new GPT2(ckpt, tokenizer, nameOrDir, { allowNonfinite: opts.allowNonfinite });
  } catch (e) {
    ckpt.close();
    throw e;
  }
}

export { openCheckpoint } from '../weights/open.js';
