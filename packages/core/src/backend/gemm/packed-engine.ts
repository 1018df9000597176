/**
 * The packed-wasm engine (wasm and cpu backends): every Linear's W packed [out, in] into arenas, one
 * shared WebAssembly.Memory each, multiplied in place by sp's SIMD kernel over the worker pool.
 */
import { Arena, padK, SCRATCH_BYTES } from './arena.js';
import { PackedLinear } from './packed-linear.js';
import { releaseArenas } from './pool.js';
import type { Linear } from '../linear.js';
import type { Engine, EngineLinears, LinearSpec, Uploader } from '../upload.js';

const aligned = (bytes: number) => Math.ceil(bytes / 64) * 64;

/**
 * Weight bytes one arena takes: a wasm32 memory addresses 4 GiB, and each arena keeps room for its
 * scratch. Models above this (gpt2-xl: 6.2 GB) are spread over several arenas, each matrix whole in
 * one. $SP_ARENA_BYTES lowers it (tests exercise the split on tiny models).
 */
export function arenaCapacity(): number {
  const env = Number(process.env.SP_ARENA_BYTES);
  const max = 4 * 2 ** 30 - 2 * SCRATCH_BYTES - (1 << 20);
  return env > 0 ? Math.min(env, max) : max;
}

/** Bytes a layer takes in its arena: W [out, padK(in)] and its bias, each 64-byte aligned. */
const layerBytes = (s: LinearSpec) => aligned(s.outDim * padK(s.inDim) * 4) + (s.bias !== undefined ? aligned(s.outDim * 4) : 0);

export const packedWasmEngine: Engine = {
  name: 'wasm',
  loadLinears(up: Uploader, specs: readonly LinearSpec[]): EngineLinears {
    // Fill arenas in load order, opening a new one when the next matrix would not fit.
    const capacity = arenaCapacity();
    const plan: LinearSpec[][] = [];
    for (const s of specs) {
      const last = plan.at(-1);
      if (last && last.reduce((b, x) => b + layerBytes(x), 0) + layerBytes(s) <= capacity) last.push(s);
      else plan.push([s]);
    }
    const arenas: Arena[] = [];
    try {
      const linears: Linear[] = [];
      for (const group of plan) {
        const arena = new Arena(group.reduce((b, x) => b + layerBytes(x), 0));
        arenas.push(arena);
        for (const s of group) {
          const Kp = padK(s.inDim);
          const w = arena.alloc(s.outDim * Kp * 4);
          if (s.stored === 'out-in') up.copyRows(s.weight, s.outDim, s.inDim, arena, w, Kp); // already [out, in]
          else up.packTransposed(s.weight, s.inDim, s.outDim, arena, w, Kp); // Conv1D [in, out] → [out, in]
          let b = 0;
          if (s.bias !== undefined) {
            b = arena.alloc(s.outDim * 4);
            up.copyRows(s.bias, 1, s.outDim, arena, b, s.outDim);
          }
          linears.push(new PackedLinear(arena, w, b, s.inDim, s.outDim));
        }
      }
      // The workers' references: the memory goes when the last one does.
      return { linears, arenas: arenas.length, release: () => releaseArenas(arenas.splice(0)) };
    } catch (e) {
      releaseArenas(arenas);
      throw e;
    }
  },
};
