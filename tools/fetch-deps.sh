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
# --golden: also a trimmed copy of ../shared/golden (ckpt, tokens, manifest, smooth/) in .shared/,
# small enough to travel to the device machine (the 64 MiB tree limit).
if [ "${1:-}" = "--golden" ] && [ -d ../../shared/golden ]; then
  cd ..
  rm -rf .shared && mkdir -p .shared/golden
  cp -r ../shared/golden/units .shared/golden/
  for c in tiny-a; do
    mkdir -p .shared/golden/$c
    cp -r ../shared/golden/$c/ckpt ../shared/golden/$c/tokens.json ../shared/golden/$c/manifest.json \
          ../shared/golden/$c/smooth .shared/golden/$c/
  done
  du -sh .shared | xargs echo "nvmoe: golden copy for the device:"
fi
