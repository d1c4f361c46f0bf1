#!/usr/bin/env bash
# Installs uworker-image for the composite action (action.yml): the prebuilt binary of a
# release when one fits the runner (checked against its .sha256), else
# `cargo install --locked` from the action's own source, which is the same version.
#
# Environment: UWORKER_IMAGE_ACTION_VERSION (a release tag, `latest`, `source`, or empty for
# the ref the action was used at), GITHUB_ACTION_PATH, GITHUB_SERVER_URL, RUNNER_TEMP,
# RUNNER_TOOL_CACHE, GITHUB_PATH. Prints the installed binary's path on stdout.
set -euo pipefail
shopt -s inherit_errexit

say() { printf 'uworker-image action: %s\n' "$*" >&2; }

action_path=${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set: run this from action.yml}
server=${GITHUB_SERVER_URL:-https://github.com}
version=${UWORKER_IMAGE_ACTION_VERSION:-}
root=${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/uworker-image

# A used action lives in .../_actions/OWNER/REPO/REF; a local one (`uses: ./`) does not.
repository='' ref=''
case $action_path in
  */_actions/*/*/*)
    rest=${action_path#*/_actions/}
    IFS=/ read -r owner repo ref _ <<<"$rest"
    repository=$owner/$repo
    ;;
esac
[ -n "$version" ] || version=${ref:-source}

# The release asset for this runner; a static musl build runs on any x86_64 Linux.
asset=''
if [ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ]; then
  asset=uworker-image-x86_64-unknown-linux-musl.tar.gz
fi

install_release() {
  local url dir
  if [ "$version" = latest ]; then
    url=$server/$repository/releases/latest/download/$asset
  else
    url=$server/$repository/releases/download/$version/$asset
  fi
  dir=$root/$version
  # Installed already by an earlier step of this job.
  if [ -x "$dir/bin/uworker-image" ]; then
    echo "$dir/bin"
    return 0
  fi
  mkdir -p "$dir/bin"
  local tmp
  tmp=$(mktemp -d "${RUNNER_TEMP:-/tmp}/uworker-image-download.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  say "downloading $url"
  curl -fsSL --retry 3 --retry-delay 2 -o "$tmp/$asset" "$url" || return 1
  curl -fsSL --retry 3 --retry-delay 2 -o "$tmp/$asset.sha256" "$url.sha256" || return 1
  (cd "$tmp" && sha256sum --check --strict --quiet "$asset.sha256") || {
    say "checksum mismatch for $asset: refusing it"
    return 2
  }
  tar -xzf "$tmp/$asset" -C "$dir/bin" uworker-image
  echo "$dir/bin"
}

install_source() {
  command -v cargo >/dev/null 2>&1 || {
    say "no prebuilt binary fits and cargo is not installed: install Rust (rustup) first"
    return 1
  }
  # Keyed by what the binary is built from, so a tool cache that outlives the job (a
  # self-hosted runner) never serves another version's build.
  [ -f "$action_path/Cargo.toml" ] || {
    say "$action_path has no Cargo.toml: cannot build uworker-image from source"
    return 1
  }
  local key dir
  key=$(cd "$action_path" && { find Cargo.toml Cargo.lock src -type f -print0 2>/dev/null || true; } |
    sort -z | xargs -0r sha256sum | sha256sum | cut -c1-16)
  dir=$root/source-$key
  if [ -x "$dir/bin/uworker-image" ]; then
    echo "$dir/bin"
    return 0
  fi
  say "building from source: cargo install --locked --path $action_path"
  cargo install --locked --quiet --root "$dir" --path "$action_path" >&2 || return 1
  echo "$dir/bin"
}

bin_dir=''
if [ "$version" != source ] && [ -n "$repository" ] && [ -n "$asset" ]; then
  status=0
  bin_dir=$(install_release) || status=$?
  [ "$status" -ne 2 ] || exit 1
  [ "$status" -eq 0 ] || { bin_dir=''; say "no release asset for $version: falling back to a build from source"; }
fi
[ -n "$bin_dir" ] || bin_dir=$(install_source)

"$bin_dir/uworker-image" --version >&2
[ -z "${GITHUB_PATH:-}" ] || echo "$bin_dir" >>"$GITHUB_PATH"
echo "$bin_dir/uworker-image"
