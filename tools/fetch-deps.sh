#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry): downloads the Debian packages
# nvmoe builds against into .deps/ (git-ignored), for tools/device-check.sh on the
# device machine, which has CUDA, CMake and ninja but no package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
pkgs=(liburing-dev liburing2 libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3
      libcjson-dev libcjson1 libxxhash-dev libxxhash0 libreadline-dev libreadline8 libncurses-dev
      libncurses6 libtinfo6 libzstd-dev libzstd1 libhwloc-dev libhwloc15)
apt-get download "${pkgs[@]}" >/dev/null
ls -1 *.deb | wc -l | xargs echo "nvmoe: .deps holds .deb files:"
# --golden: also a copy of ../shared/golden in .shared/ (git-ignored) that fits the device
# machine's 64 MiB tree limit: units, tiny-a whole, tiny-b without exact/ (~45 MB).
if [ "${1:-}" = "--golden" ] && [ -d ../../shared/golden ]; then
  cd ..
  rm -rf .shared && mkdir -p .shared/golden
  cp -r ../shared/golden/units ../shared/golden/tiny-a .shared/golden/
  mkdir -p .shared/golden/tiny-b
  for f in ckpt tokens.json manifest.json smooth faithful; do cp -r ../shared/golden/tiny-b/$f .shared/golden/tiny-b/; done
  du -sh .shared | xargs echo "nvmoe: golden copy for the device:"
fi
