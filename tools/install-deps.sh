#!/usr/bin/env bash
# Installs the Debian packages nvmoe builds against, only those missing.
# Uses sudo when not root.  Safe to run repeatedly (fast when nothing is missing).
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config liburing-dev libzstd-dev libhwloc-dev
      libreadline-dev libpcre2-dev libcjson-dev libxxhash-dev fio clang gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "nvmoe: installing missing packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
