#!/usr/bin/env bash
# The GPU run on a machine with no network, from what prepare-offline.sh packed into DIR (default
# .gpu/), at the repository root (it reads packages/core/test/fixtures and bench/gpu/hf_torch.py).
cd "$(dirname "$0")/../.."
D=${1:-.gpu}
t0=$(date +%s)
xz -dc "$D/node24.xz" > /tmp/node && chmod +x /tmp/node
mkdir -p /tmp/app && tar xJf "$D/app.tar.xz" -C /tmp/app
for f in "$D"/*.deb; do dpkg -x "$f" /; done; ldconfig
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name 'nvidia_icd*.json' 2>/dev/null | head -1)
echo "vulkan icd: ${icd:-none found}"; [ -n "$icd" ] && export VK_DRIVER_FILES=$icd
nvidia-smi -L 2>/dev/null; /tmp/node --version
echo "setup $(( $(date +%s) - t0 )) s"
/tmp/node /tmp/app/bench/webgpu.js weights /tmp/w
echo "--- hf torch"; PYTHONUNBUFFERED=1 timeout 150 python3 bench/gpu/hf_torch.py /tmp/w 2>&1 | grep -v Warning | tail -12
echo "--- sp webgpu"; timeout 300 /tmp/node /tmp/app/bench/webgpu.js check /tmp/w packages/core/test/fixtures 2>&1 | grep -v 'artificially\|^Warning' | tail -25
echo "total $(( $(date +%s) - t0 )) s"
