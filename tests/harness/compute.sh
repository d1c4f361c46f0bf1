#!/usr/bin/env bash
# The Compute (Nova) stand-in of the end-to-end tests: tests/harness/compute/nova_standin,
# run by the `nova` package's own venv (its route table and JSON schemas; no Nova runs).
#
#   tests/harness/compute.sh install        the pinned venv (cached; about a minute once)
#   tests/harness/compute.sh run ARGS...    exec the stand-in in the foreground (see
#                                           nova_standin/__main__.py; it serves until its
#                                           stdin closes or SIGTERM)
#
# Environment: UWORKER_IMAGE_TEST_CACHE (venv cache, default ~/.cache/uworker-image-test).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/harness/venv.sh
. "$here/venv.sh"
cache=${UWORKER_IMAGE_TEST_CACHE:-$HOME/.cache/uworker-image-test}
venv=$cache/nova-venv

die() { printf '[compute harness] ERROR: %s\n' "$*" >&2; exit 1; }

install() {
  ensure_venv "$venv" "$here/compute/constraints.txt" "$cache/nova-pip-install.log" nova==34.0.0 neutron-lib==5.0.1
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
