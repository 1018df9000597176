/** `openCheckpoint` without the model: no tfjs in its import graph (see light.ts). */
import { Checkpoint } from './checkpoint.js';
import { resolveModel, type DownloadOptions } from './hub.js';

/** Open a checkpoint lazily (no model load): FF keys/values, token embeddings, config. */
export async function openCheckpoint(nameOrDir: string, opts: { download?: boolean } & DownloadOptions = {}): Promise<Checkpoint> {
  return Checkpoint.open(await resolveModel(nameOrDir, opts));
}
