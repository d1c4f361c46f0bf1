#!/usr/bin/env bash
# CycloneDX's official JSON Schema for the tests: cyclonedx-python-lib's strict JSON
# validator (the schema it ships, with its `[json-validation]` extra), pinned, in a venv
# cached under ${UWORKER_IMAGE_TEST_CACHE:-~/.cache/uworker-image-test}.
#
#   tests/harness/cyclonedx.sh install          the venv (once; about half a minute)
#   tests/harness/cyclonedx.sh validate FILE... each file against CycloneDX 1.5's schema:
#                                               exit 0 when all are valid, else 1 with
#                                               the first violation of each on stderr
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/harness/venv.sh
. "$here/venv.sh"
cache=${UWORKER_IMAGE_TEST_CACHE:-$HOME/.cache/uworker-image-test}
venv=$cache/cyclonedx-venv

install() {
  mkdir -p "$cache"
  ensure_venv "$venv" "$here/cyclonedx-constraints.txt" "$cache/cyclonedx-pip-install.log" \
    'cyclonedx-python-lib[json-validation]==11.12.0'
}

case ${1:-} in
  install) install ;;
  validate)
    shift
    install
    exec "$venv/bin/python" - "$@" <<'PY'
import sys

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

validator = JsonStrictValidator(SchemaVersion.V1_5)
status = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        error = validator.validate_str(f.read())
    if error is not None:
        # Its first line: the violation, without the schema it quotes.
        first = str(error.data.message if hasattr(error.data, "message") else error).splitlines()[0]
        print(f"{path}: INVALID: {first}", file=sys.stderr)
        status = 1
    else:
        print(f"{path}: valid CycloneDX 1.5")
sys.exit(status)
PY
    ;;
  *)
    echo "usage: $0 install | validate FILE..." >&2
    exit 2
    ;;
esac
