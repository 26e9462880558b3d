#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian 12 machine with the .NET SDK: installs what the tests need
# (Debian's Fashion-MNIST package; Debian's chromium for the browser tests; PostgreSQL, whose server the
# deployment tests start themselves on 127.0.0.1), builds (the build patches libLibTorchSharp.so where needed) and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ -x /usr/bin/chromium ] || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

dotnet build WebDefense.sln -c Release
dotnet test WebDefense.sln -c Release --no-build --logger "console;verbosity=normal" "$@"
