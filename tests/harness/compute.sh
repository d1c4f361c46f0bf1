#!/usr/bin/env bash
# The Compute (Nova) stand-in of the end-to-end tests: tests/harness/compute/nova_standin,
# run by the `nova` package's own venv (its route table and JSON schemas; no Nova runs).
#
#   tests/harness/compute.sh install        the pinned venv (cached; about a minute once)
#   tests/harness/compute.sh run ARGS...    exec the stand-in in the foreground (see
#                                           nova_standin/__main__.py; it serves until its
#                                           stdin closes or SIGTERM)
#
# Environment: UWORKER_TEST_CACHE (venv cache, default ~/.cache/uworker-image-test).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${UWORKER_TEST_CACHE:-$HOME/.cache/uworker-image-test}
venv=$cache/nova-venv
constraints=$here/compute/constraints.txt

say() { printf '[compute harness] %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

install() {
  local want
  want="nova==34.0.0 $(md5sum <"$constraints" | cut -c1-12)"
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  say "installing nova's API schemas into $venv (once; about a minute)"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -c "$constraints" nova==34.0.0 \
    >"$cache/nova-pip-install.log" 2>&1 \
    || { tail -n 30 "$cache/nova-pip-install.log" >&2; die "pip install failed"; }
  echo "$want" >"$venv/.stamp"
}

case ${1:-} in
  install) install ;;
  run)
    shift
    install
    cd "$here/compute"
    # No __pycache__ in the source tree.
    export PYTHONDONTWRITEBYTECODE=1
    exec "$venv/bin/python" -m nova_standin "$@"
    ;;
  *) die "usage: $0 install|run ARGS..." ;;
esac
