/**
 * An HF GPT-2 directory (config.json, model.safetensors or sharded model-0000x-of-0000y.safetensors
 * with model.safetensors.index.json, optional tokenizer.json) opened lazily:
 * the header is parsed and validated, tensors are read on demand by byte offset. This is what
 * `ffKey`/`ffValue` use, so reading one neuron never loads the model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { SpError, assertInt } from '../errors.js';
import { makeConfig, type GPT2Config } from '../config.js';
import { blockMatrices, blockNorms, LN_F, requiredTensorShapes, WPE, WTE } from './names.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';

/** The index of a sharded checkpoint (transformers' SAFE_WEIGHTS_INDEX_NAME). */
export const SHARD_INDEX = 'model.safetensors.index.json';

/**
 * The weight_map of `<dir>/model.safetensors.index.json`: tensor name -> shard file name (a plain
 * file name in `dir`; anything with a path separator is refused so an index cannot point outside).
 */
export function readShardIndex(dir: string): Map<string, string> {
  const p = path.join(dir, SHARD_INDEX);
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (e) {
    throw new SpError('BAD_FILE', `cannot read ${p} as JSON: ${(e as Error).message.split('\n')[0]}`);
  }
  const wm = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new SpError('BAD_FILE', `${p} has no "weight_map" object`);
  const map = new Map<string, string>();
  for (const [tensor, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string' || !file || file !== path.basename(file) || file === '.' || file === '..') {
      throw new SpError('BAD_FILE', `${p}: weight_map[${JSON.stringify(tensor)}] is ${JSON.stringify(file)}, expected a file name in ${dir}`);
    }
    map.set(tensor, file);
  }
  if (map.size === 0) throw new SpError('BAD_FILE', `${p}: weight_map is empty`);
  return map;
}

/** Pickle checkpoints are never opened: unpickling runs arbitrary code. */
export const PICKLE_ADVICE =
  'pickle files can execute code when loaded, so sp never opens them: use a revision with model.safetensors (e.g. a `@refs/pr/N` conversion PR on the hub), or convert with transformers\' save_pretrained(dir, safe_serialization=True)';

/** Buffers HF stores that are not parameters. `lm_head.weight` is tied to `wte.weight`. */
const IGNORED = /(^|\.)attn\.(bias|masked_bias)$|^lm_head\.weight$/;

export class Checkpoint {
  private constructor(
    readonly dir: string,
    readonly config: GPT2Config,
    /** The first (for an unsharded checkpoint: the only) weights file. */
    readonly file: SafetensorsFile,
    /** canonical name (no `transformer.` prefix) -> name in the file */
    private readonly names: Map<string, string>,
    /** Every weights file (shards in index order) and, per real tensor name, the file holding it. */
    readonly files: SafetensorsFile[] = [file],
    private readonly holder: Map<string, SafetensorsFile> = new Map(),
  ) {}

  /** Open and validate `dir` (config from config.json, or inferred from tensor shapes). */
  static open(dir: string): Checkpoint {
    if (!fs.existsSync(dir)) throw new SpError('NOT_FOUND', `model directory ${dir} does not exist`);
    if (!fs.statSync(dir).isDirectory()) throw new SpError('NOT_FOUND', `${dir} is not a directory (pass the model's directory, not a file in it)`);
    const stPath = path.join(dir, 'model.safetensors');
    const sharded = !fs.existsSync(stPath) && fs.existsSync(path.join(dir, SHARD_INDEX));
    if (!fs.existsSync(stPath) && !sharded) {
      const pickle = ['pytorch_model.bin', 'pytorch_model.bin.index.json'].find((f) => fs.existsSync(path.join(dir, f)));
      if (pickle) throw new SpError('UNSUPPORTED', `${dir} has only ${pickle}: ${PICKLE_ADVICE}`);
      throw new SpError('NOT_FOUND', `${dir} has no model.safetensors (convert .bin checkpoints with HF's save_pretrained(safe_serialization=True))`);
    }
    const files: SafetensorsFile[] = [];
    try {
      const holder = new Map<string, SafetensorsFile>();
      if (sharded) {
        const byName = new Map<string, SafetensorsFile>();
        for (const [tensor, shard] of readShardIndex(dir)) {
          let f = byName.get(shard);
          if (!f) {
            f = SafetensorsFile.open(path.join(dir, shard));
            byName.set(shard, f);
            files.push(f);
          }
          // The index says where each tensor is; a shard that lacks it is a broken download/conversion.
          if (!f.tensors.has(tensor)) throw new SpError('BAD_FILE', `${path.join(dir, SHARD_INDEX)} puts tensor ${JSON.stringify(tensor)} in ${shard}, which does not hold it`);
          holder.set(tensor, f);
        }
      } else {
        files.push(SafetensorsFile.open(stPath));
        for (const n of files[0].tensors.keys()) holder.set(n, files[0]);
      }
      const names = new Map<string, string>();
      for (const n of holder.keys()) {
        const canon = n.startsWith('transformer.') ? n.slice('transformer.'.length) : n;
        if (IGNORED.test(canon)) continue;
        // `wte.weight` and `transformer.wte.weight` both present: which one is the model?
        if (names.has(canon)) throw new SpError('BAD_FILE', `${sharded ? path.join(dir, SHARD_INDEX) : stPath}: tensors ${JSON.stringify(names.get(canon))} and ${JSON.stringify(n)} are the same parameter`);
        names.set(canon, n);
      }
      const tensorInfo = (n: string): TensorInfo | undefined => {
        const real = names.get(n);
        return real === undefined ? undefined : holder.get(real)?.tensors.get(real);
      };
      const config = readConfig(dir, tensorInfo);
      const ckpt = new Checkpoint(dir, config, files[0], names, files, holder);
      ckpt.validate();
      return ckpt;
    } catch (e) {
      for (const f of files) f.close();
      throw e;
    }
  }

  /** The weights file holding canonical tensor `name` (one of the shards for a sharded checkpoint). */
  fileOf(name: string): SafetensorsFile {
    const real = this.names.get(name);
    const f = real === undefined ? undefined : this.holder.get(real);
    if (!f) throw new SpError('NOT_FOUND', `tensor "${name}" missing from ${this.files.length > 1 ? path.join(this.dir, SHARD_INDEX) : this.file.path}`);
    return f;
  }

  /** Raw bytes [byteOffset, byteOffset + dst.byteLength) of tensor `name`'s data, from whichever file holds it. */
  readInto(name: string, dst: Uint8Array, byteOffset = 0): void {
    this.fileOf(name).readInto(this.names.get(name)!, dst, byteOffset);
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(this.names.get(name)!);
  }

  /** A whole tensor as float32 (F16/BF16 upcast). */
  read(name: string): Float32Array {
    return this.fileOf(name).read(this.info(name).name);
  }

  /** FF key j of `layer`: column j of h.{layer}.mlp.c_fc.weight ([d_model, d_mlp], Conv1D layout). */
  ffKey(layer: number, j: number): Float32Array {
    this.checkNeuron(layer, j);
    const name = blockMatrices(this.config, layer)[2].name + '.weight';
    return this.fileOf(name).readColumn(this.info(name).name, j);
  }

  /** FF value j of `layer`: row j of h.{layer}.mlp.c_proj.weight ([d_mlp, d_model]). */
  ffValue(layer: number, j: number): Float32Array {
    this.checkNeuron(layer, j);
    const name = blockMatrices(this.config, layer)[3].name + '.weight';
    return this.fileOf(name).readRow(this.info(name).name, j);
  }

  /** A LayerNorm's weight and bias: `ln1`/`ln2` of block `layer`, or `ln_final`. */
  layerNorm(layer: number, which: 'ln1' | 'ln2' | 'ln_final'): { w: Float32Array; b: Float32Array } {
    const n = which === 'ln_final' ? LN_F : blockNorms(layer)[which];
    return { w: this.read(n + '.weight'), b: this.read(n + '.bias') };
  }

  /** attn.c_proj of `layer` as stored: weight [d_model (heads × d_head), d_model] and bias. */
  attnOut(layer: number): { w: Float32Array; b: Float32Array } {
    const n = blockMatrices(this.config, layer)[1].name;
    return { w: this.read(n + '.weight'), b: this.read(n + '.bias') };
  }

  /** Row `id` of the token embedding. */
  tokenEmbedding(id: number): Float32Array {
    assertInt('token id', id, 0, this.config.dVocab);
    return this.fileOf(WTE).readRow(this.info(WTE).name, id);
  }

  /** Total bytes of parameter data in the file. */
  get parameterBytes(): number {
    let n = 0;
    for (const real of this.names.values()) {
      const t = this.holder.get(real)!.info(real);
      n += t.end - t.begin;
    }
    return n;
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private checkNeuron(layer: number, j: number): void {
    assertInt('layer', layer, 0, this.config.nLayer);
    assertInt('neuron index', j, 0, this.config.dMlp);
  }

  private validate(): void {
    // Blocks beyond n_layer would be silently dropped: config.json and the weights disagree.
    for (const name of this.names.keys()) {
      const m = /^h\.(\d+)\./.exec(name);
      if (m && Number(m[1]) >= this.config.nLayer) {
        throw new SpError('BAD_FILE', `${this.file.path}: tensor "${name}" belongs to block ${m[1]} but the config has ${this.config.nLayer} layers`);
      }
    }
    for (const [name, shape] of requiredTensorShapes(this.config)) {
      const real = this.names.get(name);
      if (!real) throw new SpError('BAD_FILE', `${this.file.path}: missing tensor "${name}"`);
      const got = this.info(name).shape;
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new SpError('BAD_FILE', `${this.file.path}: tensor "${name}" has shape [${got}], expected [${shape}] for this config`);
      }
    }
  }
}

function readConfig(dir: string, tensor: (name: string) => TensorInfo | undefined): GPT2Config {
  const cfgPath = path.join(dir, 'config.json');
  let raw: Record<string, unknown> = {};
  if (fs.existsSync(cfgPath)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
    } catch {
      throw new SpError('BAD_FILE', `cannot parse ${cfgPath} as JSON`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new SpError('BAD_FILE', `${cfgPath} is not a JSON object`);
    raw = parsed as Record<string, unknown>;
  }
  const num = (k: string): number | undefined => {
    const v = raw[k];
    if (v === undefined || v === null) return undefined;
    // Sizes must be positive integers; layer_norm_epsilon a positive number.
    const ok = typeof v === 'number' && (k === 'layer_norm_epsilon' ? v > 0 && Number.isFinite(v) : Number.isSafeInteger(v) && v > 0);
    if (!ok) throw new SpError('BAD_FILE', `${cfgPath}: ${k} is ${JSON.stringify(v)}, expected a positive ${k === 'layer_norm_epsilon' ? 'number' : 'integer'}`);
    return v as number;
  };
  // The forward pass implements GPT-2's tanh-approximated GELU only; anything else would run silently wrong.
  const act = raw.activation_function;
  if (act !== undefined && act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') {
    throw new SpError('UNSUPPORTED', `${cfgPath}: activation_function ${JSON.stringify(act)} is not supported (GPT-2 uses "gelu_new")`);
  }
  // Infer from shapes where config.json is absent or silent.
  const wte = tensor(WTE);
  const wpe = tensor(WPE);
  const fc = tensor('h.0.mlp.c_fc.weight'); // before the config is known: blockMatrices needs it
  if (!wte || !wpe) throw new SpError('BAD_FILE', `${dir}/model.safetensors has no wte.weight/wpe.weight: not a GPT-2 checkpoint`);
  if (wte.shape.length !== 2 || wpe.shape.length !== 2) throw new SpError('BAD_FILE', `${dir}/model.safetensors: wte.weight [${wte.shape}] and wpe.weight [${wpe.shape}] must be 2-D`);
  let nLayer = num('n_layer');
  if (nLayer === undefined) for (nLayer = 0; tensor(blockNorms(nLayer).ln1 + '.weight'); nLayer++);
  const dModel = num('n_embd') ?? wte.shape[1];
  const nHead = num('n_head') ?? inferHeads(dModel);
  if (!Number.isInteger(dModel / nHead)) throw new SpError('BAD_FILE', `${cfgPath}: n_embd ${dModel} is not divisible by n_head ${nHead}`);
  return makeConfig({
    nLayer,
    nHead,
    dModel,
    nCtx: num('n_positions') ?? num('n_ctx') ?? wpe.shape[0],
    dVocab: num('vocab_size') ?? wte.shape[0],
    layerNormEps: num('layer_norm_epsilon') ?? 1e-5,
    dMlp: num('n_inner') ?? fc?.shape[1] ?? 4 * dModel,
  });
}

/** GPT-2 uses 64-dim heads; fall back to that when config.json is missing. */
function inferHeads(dModel: number): number {
  return dModel % 64 === 0 ? dModel / 64 : 1;
}
