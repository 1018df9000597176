/**
 * `@sp/core/light`: the parts of @sp/core that need no tensor library — errors, configs, the
 * checkpoint reader (FF keys/values, token embeddings) and the hub. Importing `@sp/core` loads
 * TensorFlow.js (~200 ms before any work); commands like `sp neuron` that only read the file
 * import this entry instead and start in a few tens of milliseconds.
 */
export { SpError, assertInt, type SpErrorCode } from './errors.js';
export { checkEnv, parseThreads, parseEngine, MAX_THREADS } from './backend/env.js';
export { displayToken, displayText, quoteToken, joinTokens } from './tokenizer/display.js';
export { makeConfig, PRESETS, PRESET_NAMES, type GPT2Config, type PresetName } from './config.js';
export { SafetensorsFile, encodeSafetensors, writeSafetensors, type DType, type TensorInfo, type TensorToWrite } from './weights/safetensors.js';
export { Checkpoint } from './weights/checkpoint.js';
export { resolveModel, downloadModel, findLocalModel, findInHfCache, hfHubCache, listCachedModels, parseModelSpec, weightsDirs, HUB_REPOS, type CachedModel, type DownloadOptions, type ModelSpec } from './weights/hub.js';
export { openCheckpoint } from './weights/open.js';
