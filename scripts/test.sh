#!/usr/bin/env bash
# The test suite: sets up what it needs, then runs every test (unit, integration,
# snapshots, real packer and shellcheck). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --locked --no-fail-fast --lib --tests "$@"
