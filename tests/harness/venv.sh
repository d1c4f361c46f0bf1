# shellcheck shell=bash
# Sourced by the harness scripts: a pinned pip venv, installed once and cached.
#
#   ensure_venv VENV CONSTRAINTS LOG PACKAGE...
#
# Reinstalls only when the packages or the constraints file change (a stamp file in VENV
# records both); pip's output goes to LOG, its tail to stderr when it fails.
ensure_venv() {
  local venv=$1 constraints=$2 log=$3
  shift 3
  local want
  want="$* $(md5sum <"$constraints" | cut -c1-12)"
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "[harness] installing $* into $venv (once; about a minute)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  if ! "$venv/bin/pip" install -q --disable-pip-version-check -c "$constraints" "$@" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "[harness] ERROR: pip install of $* failed" >&2
    return 1
  fi
  echo "$want" >"$venv/.stamp"
}
