#!/usr/bin/env bash
# Runs the service: installs Debian's Fashion-MNIST package for the demo data sets if missing, then starts
# the server (ASPNETCORE_URLS or --urls pick the address; WebDefense__DataDirectory the data folder).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "installing: dataset-fashion-mnist"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist
fi

exec dotnet run --project src/Server -c Release -- "$@"
