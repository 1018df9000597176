/**
 * Analyses that read tensors mid-way are written once, as steps: a generator that yields each
 * tensor it needs the values of and is given them back. `readSteps` runs it synchronously (in place
 * on the wasm heap where there is one), `readStepsAsync` awaits each read where the backend cannot
 * read synchronously (webgpu in Node): the same code and the same numbers on every backend.
 * A step's values are valid until its next tfjs op: copy what is kept. An abandoned run (a failed
 * read) is closed with return(), so the generator's finally blocks free what it holds.
 */
import type * as tfc from '@tensorflow/tfjs-core';
import { readNow } from './heap.js';
import { readAsync, syncReads } from './webgpu.js';

export type ReadSteps<T> = Generator<tfc.Tensor, T, Float32Array>;

export function readSteps<T>(steps: ReadSteps<T>): T {
  let done = false;
  try {
    let r = steps.next();
    while (!r.done) r = steps.next(readNow(r.value));
    done = true;
    return r.value;
  } finally {
    if (!done) steps.return(undefined as never);
  }
}

export async function readStepsAsync<T>(steps: ReadSteps<T>): Promise<T> {
  let done = false;
  try {
    let r = steps.next();
    while (!r.done) r = steps.next(syncReads() ? readNow(r.value) : await readAsync(r.value));
    done = true;
    return r.value;
  } finally {
    if (!done) steps.return(undefined as never);
  }
}
