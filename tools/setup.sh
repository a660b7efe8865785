#!/usr/bin/env bash
# Installs the Debian (bookworm) packages garlic needs to build and test (chromium for the
# browser tests of the built-in pages), the npm packages of
# the end-to-end tests (tests/e2e, from its lockfile), then builds and puts the demo model
# (models/Modelfile: models/stories260K.gguf) into the model store as stories260K, which the
# README's run command uses (no network; running it again changes nothing). Runs apt-get
# directly as root, through sudo otherwise. Node and npm come from Debian unless a node is
# installed.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(build-essential clang-14 libfuzzer-14-dev libcmocka-dev libcjson-dev libpcre2-dev
          libcurl4-openssl-dev libssl-dev curl unicode-data clang-format-14 python3 python3-numpy
          chromium openmpi-bin libopenmpi-dev)
# A node from elsewhere (e.g. NodeSource, which bundles npm) conflicts with Debian's npm.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq "${missing[@]}"
fi
npm ci --prefix tests/e2e --no-audit --no-fund
make -j"$(nproc)"
./garlic create stories260K -q -f models/Modelfile
