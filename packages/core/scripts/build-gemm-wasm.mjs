#!/usr/bin/env node
/**
 * Assembles scripts/gemm-wat.mjs with wabt into src/backend/gemm/wasm-binary.ts (base64). Run after
 * editing the kernel (`pnpm --filter @sp/core run gen:wasm`). With --check it writes nothing and
 * exits 1 when the committed file differs from what the generator produces (test/gemm checks the same).
 */
import fs from 'node:fs';
import { assembleBoth, WASM_BINARY_PATH, wasmBinaryIsCurrent, wasmBinarySource } from './gemm-assemble.mjs';

const args = process.argv.slice(2);
if (args.some((a) => a !== '--check')) {
  console.error(`error: unknown argument ${JSON.stringify(args.find((a) => a !== '--check'))} (usage: build-gemm-wasm.mjs [--check])`);
  process.exit(2);
}
if (args.includes('--check')) {
  if (await wasmBinaryIsCurrent()) {
    console.log(`${WASM_BINARY_PATH} is up to date`);
  } else {
    console.error(`error: ${WASM_BINARY_PATH} is stale: run \`pnpm --filter @sp/core run gen:wasm\``);
    process.exit(1);
  }
} else {
  const [bytes, relaxed] = await assembleBoth();
  fs.writeFileSync(WASM_BINARY_PATH, wasmBinarySource(bytes, relaxed));
  console.log(`wrote ${WASM_BINARY_PATH} (${bytes.length} + ${relaxed.length} bytes)`);
}
