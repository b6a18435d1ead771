#!/usr/bin/env bash
# Run HERE (a machine with Debian's package registry): downloads the Debian packages
# nvmoe builds against into .deps/ (git-ignored), for tools/device-check.sh on the
# device machine, which has CUDA, CMake and ninja but no package registry.
# Only what the build links (CMakeLists.txt nv_dep: uring, pcre2-8, cjson, xxhash,
# readline) and what those libraries load at run time (libtinfo for readline): the
# device tool carries at most 64 MiB with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .deps
mkdir -p .deps
cd .deps
pkgs=(liburing-dev liburing2 libpcre2-dev libpcre2-8-0 libcjson-dev libcjson1 libxxhash-dev libxxhash0
      libreadline-dev libreadline8 libtinfo6)
apt-get download "${pkgs[@]}" >/dev/null 2>&1 || apt-get download "${pkgs[@]}"
ls -1 *.deb | wc -l | xargs echo "nvmoe: .deps holds .deb files:"
cd ..
# --golden: also a copy of ../shared/golden in .shared/ (git-ignored) that fits the device
# machine's 64 MiB tree limit: units, tiny-a whole, tiny-b ckpt + faithful (its smooth and
# exact modes are left out), the small files of ref/deepseek-v4-flash: ~39 MB.
if [ "${1:-}" = "--golden" ] && [ -d ../shared/golden ]; then
  rm -rf .shared && mkdir -p .shared/golden/tiny-b
  cp -r ../shared/golden/units ../shared/golden/tiny-a .shared/golden/
  for f in ckpt tokens.json manifest.json faithful; do cp -r ../shared/golden/tiny-b/$f .shared/golden/tiny-b/; done
  # the small reference files (released config, generation config) some unit tests read;
  # not the 14 MB of tokenizer files: device-check.sh leaves out the tests needing them
  mkdir -p .shared/ref/deepseek-v4-flash
  for f in config.json generation_config.json tokenizer_config.json PROVENANCE.md; do
    cp ../shared/ref/deepseek-v4-flash/$f .shared/ref/deepseek-v4-flash/
  done
  du -sh .shared | xargs echo "nvmoe: golden copy for the device:"
fi
# What the device tool's `run` would carry: tracked and untracked-not-ignored files plus
# the carried .deps and .shared.  Over 64 MiB it refuses; warn well before.
tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
extra=$(du -sbc .deps $( [ -d .shared ] && echo .shared ) | tail -1 | cut -f1)
total=$(( tree + extra ))
echo "nvmoe: carried to the device: $(( total / 1048576 )) MiB (tree $(( tree / 1048576 )) MiB + .deps/.shared $(( extra / 1048576 )) MiB; limit 64 MiB)"
if [ $total -gt $(( 60 * 1048576 )) ]; then
  echo "nvmoe: WARNING: within 4 MiB of the 64 MiB limit: trim .shared or untracked files" >&2
fi
