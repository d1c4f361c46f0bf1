#!/usr/bin/env bash
# Packs a built uworker-image as the release workflow attaches it and action/install.sh
# fetches it: OUTDIR/uworker-image-TARGET.tar.gz (the binary alone) and its .sha256.
#
#   scripts/package-release.sh BINARY TARGET OUTDIR
set -euo pipefail

[ "$#" -eq 3 ] || { echo "usage: $0 BINARY TARGET OUTDIR" >&2; exit 2; }
binary=$1 target=$2 outdir=$3
[ -x "$binary" ] || { echo "$0: $binary is not an executable" >&2; exit 2; }
[ "$(basename "$binary")" = uworker-image ] || { echo "$0: $binary is not named uworker-image" >&2; exit 2; }
case $target in
  *[!a-z0-9_-]* | '') echo "$0: \`$target\` is not a target triple" >&2; exit 2 ;;
esac

"$binary" --version >/dev/null
asset=uworker-image-$target.tar.gz
mkdir -p "$outdir"
tar -czf "$outdir/$asset" -C "$(dirname "$binary")" uworker-image
(cd "$outdir" && sha256sum "$asset" >"$asset.sha256")
echo "$outdir/$asset"
