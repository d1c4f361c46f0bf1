#!/usr/bin/env bash
# Installs the pinned Prism (package-lock.json; `--omit=dev` leaves out the 385 MB
# @octokit/openapi, which only trim.js needs) into the test cache, once per lockfile,
# and prints the directory whose node_modules holds it. Reruns take milliseconds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${UWORKER_IMAGE_TEST_CACHE:-$HOME/.cache/uworker-image-test}/github-prism"
stamp="$cache/.installed-$(sha256sum "$here/package-lock.json" | cut -c1-16)"
mkdir -p "$(dirname "$cache")"
exec 9>"$cache.lock"
flock 9
if [ ! -f "$stamp" ]; then
  rm -rf "$cache"
  mkdir -p "$cache"
  cp "$here/package.json" "$here/package-lock.json" "$cache/"
  # Prism 5.16 declares node >= 24 but runs on Debian 12's node 20 (engines are advisory).
  (cd "$cache" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >&2)
  touch "$stamp"
fi
echo "$cache"
