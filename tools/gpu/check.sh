#!/usr/bin/env bash
# Issue 19's GPU check, run on the GPU machine from the repository root after tools/gpu/prepare.sh made
# artifacts/gpu-check here. Everything it finds goes to $OUT: versions, the symbol check, the build log when
# LibTorchSharp had to be rebuilt, and gpu-check.json from `WebDefense.Experiments gpu-check`.
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check-out}
mkdir -p "$OUT"
bundle=artifacts/gpu-check
work=$(mktemp -d)
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/check.log"; }
py=${PYTHON:-/opt/torch/.venv/bin/python}
[ -x "$py" ] || py=python3
T=$("$py" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())' | tee "$OUT/versions.txt"
nvidia-smi >> "$OUT/versions.txt" 2>&1 || true
tar -C "$work" -xJf "$bundle/app.tar.xz"
app="$work/app"

# 1. Symbols: what TorchSharp 0.107's LibTorchSharp (built for libtorch 2.10) imports that the wheel's libtorch lacks.
missing=-1
if [ -f "$app/libLibTorchSharp.so" ] || [ -f "$app/runtimes/linux-x64/native/libLibTorchSharp.so" ]; then
  lib=$(ls "$app/libLibTorchSharp.so" "$app/runtimes/linux-x64/native/libLibTorchSharp.so" 2>/dev/null | head -1)
  nm -D --undefined-only "$lib" | awk '{print $2}' | grep -E '^_ZN?K?(3c10|2at|5torch)' | sort -u > "$OUT/need.txt"
  for f in "$T"/lib{c10,torch_cpu,torch,c10_cuda,torch_cuda}.so; do nm -D --defined-only "$f"; done | awk '{print $3}' | sort -u > "$work/have.txt"
  comm -23 "$OUT/need.txt" "$work/have.txt" > "$OUT/missing-symbols.txt"
  missing=$(wc -l < "$OUT/missing-symbols.txt")
fi
log "missing symbols: $missing"

# 2. When anything is missing: rebuild LibTorchSharp from TorchSharp's 0.107.0 sources against the wheel's libtorch.
if [ "$missing" != 0 ]; then
  mkdir -p "$work/ts" && tar -C "$work/ts" -xzf "$bundle/native.tar.gz"
  mkdir -p "$work/ts/bin/obj" && echo '#define TORCHSHARP_VERSION "0.107.0"' > "$work/ts/bin/obj/_version.h"
  prefix=$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  log "building LibTorchSharp against $prefix"
  if cmake -S "$work/ts/src/Native" -B "$work/ts/bin/obj/native" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DLIBTORCH_PATH="$prefix/Torch" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_FLAGS="-Wno-error" >> "$OUT/build.log" 2>&1 \
     && ninja -C "$work/ts/bin/obj/native" >> "$OUT/build.log" 2>&1; then
    built=$(find "$work/ts/bin/obj/native" -name libLibTorchSharp.so | head -1)
    rm -f "$app/runtimes/linux-x64/native/libLibTorchSharp.so"
    cp "$built" "$app/libLibTorchSharp.so"
    log "built $built"
  else
    log "LibTorchSharp build failed (build.log)"; tail -50 "$OUT/build.log"; exit 3
  fi
fi

# 3. The check itself, on the wheel's libtorch (loaded in order, every symbol bound up front).
export WEBDEFENSE_TORCH_PRELOAD="$T/libc10.so:$T/libtorch_cpu.so:$T/libc10_cuda.so:$T/libtorch_cuda.so:$T/libtorch.so"
export LD_LIBRARY_PATH="$T:${LD_LIBRARY_PATH:-}" LD_BIND_NOW=1
log "running gpu-check"
"$app/WebDefense.Experiments" gpu-check --device cuda:0 --threads "$(nproc)" --data "$bundle/data" \
  --fixtures tests/fixtures/interop --out "$OUT/gpu-check.json" > "$OUT/gpu-check.out" 2>&1
code=$?
log "gpu-check exit $code"
tail -40 "$OUT/gpu-check.out"
exit $code
