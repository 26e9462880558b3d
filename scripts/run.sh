#!/usr/bin/env bash
# Runs the service as it ships: installs Debian's Fashion-MNIST package for the demo data sets if missing, publishes
# the server (trimmed, precompressed, fingerprinted dashboard, as the Dockerfile does) to artifacts/publish/ and starts
# it (ASPNETCORE_URLS or --urls pick the address; WebDefense__DataDirectory the data folder, default data/ here).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
  echo "installing: dataset-fashion-mnist"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist
fi

out=artifacts/publish
rm -rf "$out/wwwroot"   # no file of an earlier version stays servable
dotnet publish src/Server/WebDefense.Server.csproj -c Release -o "$out" -nologo
export WebDefense__DataDirectory="${WebDefense__DataDirectory:-$PWD/data}"
exec dotnet "$out/WebDefense.Server.dll" "$@"
