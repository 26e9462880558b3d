#!/usr/bin/env bash
# Prepares issue 19's GPU check on this (CPU) machine, so that GPU time is spent only on running it.
# Writes artifacts/gpu-check/ (git-ignored, about 45 MB; the device tool carries it with `carry: ["artifacts/gpu-check"]`):
#   app.tar.xz       a self-contained linux-x64 publish of tools/Experiments (no .NET SDK needed there), WITHOUT the
#                    CPU libtorch natives: on the GPU machine the PyTorch wheel's libtorch is used instead
#   native.tar.gz    TorchSharp's src/Native at the 0.107.0 release (from a TorchSharp git mirror, $TORCHSHARP_GIT),
#                    to rebuild libLibTorchSharp.so against the wheel's libtorch when symbols are missing
#   data/            the CIFAR-10 JPEG archives from ../shared/data/cifar10-jpeg (not committed; copied for the trip)
# Then, on the GPU machine: bash tools/gpu/check.sh (see docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=artifacts/gpu-check
rm -rf "$out" && mkdir -p "$out/data"
publish=$(mktemp -d)
dotnet publish tools/Experiments -c Release -r linux-x64 --self-contained -o "$publish/app" -p:DebugType=none >/dev/null
# The CPU build of libtorch stays here; LibTorchSharp itself goes (rebuilt or reused by check.sh).
find "$publish/app" \( -name 'libtorch*.so*' -o -name 'libc10*.so*' -o -name 'libgomp*.so*' -o -name 'libbackend_with_compiler.so' \
  -o -name 'libshm.so' -o -name 'libtorch_global_deps.so' \) -delete
tar -C "$publish" -cJf "$out/app.tar.xz" app
rm -rf "$publish"
git_dir=${TORCHSHARP_GIT:-/work/.mirror/dotnet+TorchSharp/repo}
rev=${TORCHSHARP_REV:-HEAD}
git --git-dir "$git_dir" show "$rev:RELEASENOTES.md" | grep -m1 '^# NuGet Version' | grep -q '0.107.0' \
  || { echo "prepare: $git_dir at $rev is not the 0.107.0 release (RELEASENOTES.md)"; exit 1; }
git --git-dir "$git_dir" archive --format=tar.gz -o "$out/native.tar.gz" "$rev" src/Native
cp ../shared/data/cifar10-jpeg/cifar10-jpeg-train.tar.gz ../shared/data/cifar10-jpeg/cifar10-jpeg-test.tar.gz "$out/data/"
du -sh "$out" "$out"/*
