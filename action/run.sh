#!/usr/bin/env bash
# Runs one uworker-image command for the composite action (action.yml): the action's
# inputs, passed in UWORKER_IMAGE_ACTION_* variables (never spliced into the script), become
# flags. The command's stdout is printed and also set as the step output `stdout`
# (`matrix` prints its strategy.matrix there); the command's exit code is the step's.
#
# A cancelled job: GitHub's runner sends SIGINT to the step's process only (action.yml
# `exec`s this script, so that is this shell), SIGTERM 7.5 s later, SIGKILL 2.5 s after.
# Both signals are passed on to the tool, which stops packer with its cleanup and exits;
# this script waits for it and exits with its code.
set -euo pipefail

say() { printf 'uworker-image action: %s\n' "$*" >&2; }

bin=${UWORKER_IMAGE_ACTION_BIN:?UWORKER_IMAGE_ACTION_BIN is not set: run this from action.yml}
command=${UWORKER_IMAGE_ACTION_COMMAND:-}
if [ -z "$command" ]; then
  say "no command: uworker-image is installed and on PATH"
  exit 0
fi

args=()
flag() { # --flag VALUE, when VALUE is not empty
  [ -z "$2" ] || args+=("$1" "$2")
}
flag --dir "${UWORKER_IMAGE_ACTION_DIR:-}"
flag --target "${UWORKER_IMAGE_ACTION_TARGET:-}"
flag --output "${UWORKER_IMAGE_ACTION_OUTPUT:-}"
flag --var-file "${UWORKER_IMAGE_ACTION_VAR_FILE:-}"
flag --worker-config "${UWORKER_IMAGE_ACTION_WORKER_CONFIG:-}"
# One KEY=VALUE a line; a line with an empty value is left out, so an unset repository
# variable keeps the definition's default.
while IFS= read -r line; do
  case $line in
    '' | *=) ;;
    *=*) args+=(--var "$line") ;;
    *)
      say "input vars: \`$line\` is not KEY=VALUE"
      exit 2
      ;;
  esac
done <<<"${UWORKER_IMAGE_ACTION_VARS:-}"

args+=("$command")
case ${UWORKER_IMAGE_ACTION_FORCE:-false} in
  true)
    case $command in
      plan | build) args+=(--force) ;;
      *)
        say "input force: only plan and build rebuild on request, not $command"
        exit 2
        ;;
    esac
    ;;
  false | '') ;;
  *)
    say "input force: \`${UWORKER_IMAGE_ACTION_FORCE}\` is not true or false"
    exit 2
    ;;
esac
if [ -n "${UWORKER_IMAGE_ACTION_OUT:-}" ]; then
  case $command in
    plan | build) args+=(--out "$UWORKER_IMAGE_ACTION_OUT") ;;
    *)
      say "input out: only plan and build write a record, not $command"
      exit 2
      ;;
  esac
fi
# Extra arguments, one a line, passed as they are.
while IFS= read -r line; do
  [ -z "$line" ] || args+=("$line")
done <<<"${UWORKER_IMAGE_ACTION_ARGS:-}"

stdout=$(mktemp "${RUNNER_TEMP:-/tmp}/uworker-image-stdout.XXXXXX")
trap 'rm -f "$stdout"' EXIT
# The traps first: a cancel that comes as the tool starts must not end this shell and
# leave the tool running unsignalled. One that comes before its PID is known is passed
# on with the next (the runner's SIGTERM follows its SIGINT).
tool=''
# shellcheck disable=SC2317 # called by the traps below
forward() { [ -z "$tool" ] || kill -s "$1" "$tool" 2>/dev/null || true; }
trap 'forward INT' INT
trap 'forward TERM' TERM
"$bin" "${args[@]}" >"$stdout" &
tool=$!
# `wait` returns early (128 + the signal) when a trap runs while the tool still runs (or
# has exited unreaped): wait again. Any other code is the tool's own.
code=0
while :; do
  code=0
  wait "$tool" || code=$?
  if [ "$code" -le 128 ] || ! kill -0 "$tool" 2>/dev/null; then
    break
  fi
done
trap - INT TERM
cat "$stdout"
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  delimiter=uworker-image-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  {
    echo "stdout<<$delimiter"
    # Exactly one newline before the delimiter, whatever the command printed last.
    printf '%s\n' "$(cat "$stdout")"
    echo "$delimiter"
  } >>"$GITHUB_OUTPUT"
fi
exit "$code"
