#!/usr/bin/env bash
# The main job on the default definition (provision/): sets up packer, builds the tool
# and runs `uworker-image plan`. Extra arguments go to uworker-image.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --locked --release --quiet -- --dir provision plan "$@"
