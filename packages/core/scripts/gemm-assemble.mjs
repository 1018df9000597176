import wabtInit from 'wabt';
import { gemmWat } from './gemm-wat.mjs';

/** The kernel's wasm bytes (wabt: text → binary with the SIMD and threads features). */
export async function assembleGemm() {
  const wabt = await wabtInit();
  const mod = wabt.parseWat('gemm.wat', gemmWat(), { simd: true, threads: true });
  try {
    const bytes = mod.toBinary({}).buffer;
    if (!WebAssembly.validate(bytes)) throw new Error('gemm kernel: the assembled module does not validate');
    return bytes;
  } finally {
    mod.destroy();
  }
}
