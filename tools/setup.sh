#!/usr/bin/env bash
# Installs the Debian (bookworm) packages garlic needs to build and test, then builds.
# Runs apt-get directly as root, through sudo otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(build-essential clang-14 libfuzzer-14-dev libcmocka-dev libcjson-dev libpcre2-dev)
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
make -j"$(nproc)"
