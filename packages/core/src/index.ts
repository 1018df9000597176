/** @sp/core — GPT-2 interpretability in TypeScript. */
export { SpError, type SpErrorCode } from './errors.js';
export { initBackend, backendName, tf, type BackendName } from './backend/index.js';
export { makeConfig, PRESETS, PRESET_NAMES, type GPT2Config, type PresetName } from './model/config.js';
export { GPT2, type ModelInput, type EmbedOverride, type Injection, type ForwardOptions, type TokenBatch } from './model/gpt2.js';
export { gpt2, openCheckpoint, type LoadOptions } from './model/load.js';
export type { KVCache, Patch } from './model/forward.js';
export { ActivationCache, hookNames, BLOCK_HOOKS, type HookFn, type HookPoint, type FwdHook, type HookFilter } from './hooks/index.js';
export { GPT2Tokenizer } from './tokenizer/index.js';
export { SafetensorsFile, encodeSafetensors, writeSafetensors, type DType, type TensorInfo, type TensorToWrite } from './weights/safetensors.js';
export { Checkpoint } from './weights/checkpoint.js';
export { resolveModel, downloadModel, findLocalModel, weightsDirs, HUB_REPOS, type DownloadOptions } from './weights/hub.js';
export { generate, generateStream, type GenerateOptions, type GenerateResult, type TokenEvent } from './generate/generate.js';
export { applyRepetitionPenalty, samplingDistribution, sampleFrom, argmax } from './generate/logits-processors.js';
export { seededRandom } from './generate/rng.js';
