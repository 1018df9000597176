import { initBackend } from '../backend/index.js';
import { GPT2Tokenizer } from '../tokenizer/index.js';
import { Checkpoint } from '../weights/checkpoint.js';
import { resolveModel, type DownloadOptions } from '../weights/hub.js';
import { GPT2 } from './gpt2.js';

export interface LoadOptions extends DownloadOptions {
  /** 'wasm' | 'cpu' | 'tensorflow' | 'webgpu'; default: $SP_BACKEND, else the best one installed. */
  backend?: string;
  /** Download a missing model from the Hugging Face hub (default true; never with HF_HUB_OFFLINE=1). */
  download?: boolean;
  /**
   * Load weights that are NaN or ±Infinity (default false: the load fails with a NONFINITE_WEIGHTS
   * SpError naming the tensor, e.g. after a bad fp16 conversion).
   */
  allowNonfinite?: boolean;
}

/**
 * Load GPT-2 from a preset name (`gpt2`, `gpt2-medium`, ...), any GPT-2 hub repo id
 * (`owner/name[@revision]`) or an HF-layout directory; names are looked up locally (the shared
 * Hugging Face cache included, see weights/hub.ts) and downloaded into the HF cache when missing.
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
