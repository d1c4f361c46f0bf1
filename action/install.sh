#!/usr/bin/env bash
# Installs uworker-image for the composite action (action.yml), the first that applies:
#   - the binary the workflow hands over (UWORKER_IMAGE_ACTION_BINARY: an artifact built
#     earlier in the run), checked against UWORKER_IMAGE_ACTION_BINARY_SHA256 when set;
#   - the prebuilt binary of a release that fits the runner: its .sha256 must be one line
#     naming exactly that asset, and when the gh CLI is there, its build provenance
#     attestation must verify for the action's repository (`latest` is first resolved to
#     the tag it points at now);
#   - else `cargo install --locked` from the action's own source, which is the same
#     version, in a scrubbed environment: cargo runs the build scripts and proc-macros of
#     every dependency, which must not see the job's secrets.
# The tool cache may outlive the job (a self-hosted runner) and is shared by every
# repository's jobs there: a release is kept per server, repository and tag, with its
# asset, and reused only when that asset still has the hash the release's .sha256 says
# now and the binary is the asset's; the workflow's binary is kept by its hash, a build
# from source by its source's hash (and re-hashed against the hash recorded then).
#
# Environment: UWORKER_IMAGE_ACTION_VERSION (a release tag, `latest`, `source`, or empty for
# the ref the action was used at), UWORKER_IMAGE_ACTION_BINARY(_SHA256),
# UWORKER_IMAGE_ACTION_GITHUB_TOKEN (for gh only), GITHUB_ACTION_PATH, GITHUB_SERVER_URL,
# RUNNER_TEMP, RUNNER_TOOL_CACHE, GITHUB_PATH. Prints the installed binary's path on stdout.
set -euo pipefail
shopt -s inherit_errexit

say() { printf 'uworker-image action: %s\n' "$*" >&2; }

action_path=${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set: run this from action.yml}
server=${GITHUB_SERVER_URL:-https://github.com}
host=${server#*://}
host=${host%%/*}
version=${UWORKER_IMAGE_ACTION_VERSION:-}
root=${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/uworker-image

# Secrets in this step's environment reach code that is not the tool (setup-packer in
# the same `uses:`, cargo's build scripts). Names only, never values.
warn_about_secrets() {
  local name found=()
  while IFS= read -r name; do
    case $name in
      # The one setting of the tool that may carry a token (a private worker repository).
      UWORKER_IMAGE_WORKER_SOURCE) found+=("$name") ;;
      # The tool's and this action's own settings; the runner's own tokens (id-token).
      UWORKER_IMAGE_* | ACTIONS_*) ;;
      OS_* | UWORKER_* | GH_TOKEN | GITHUB_PAT | *PASSWORD* | *SECRET* | *TOKEN* | *_API_KEY | *PRIVATE_KEY*)
        found+=("$name")
        ;;
    esac
  done < <(compgen -e)
  [ "${#found[@]}" -eq 0 ] ||
    printf '::warning title=uworker-image: secrets where it is installed::%s\n' \
      "${found[*]} in the environment of the step that installs uworker-image: installing runs code that is not the tool (setup-packer, cargo's build scripts). Give secrets only to the step that runs the tool (docs/github-actions.md: \"Using it from another repository\")." >&2
}

# "$@" with only what cargo and rustup need: no secret, no token.
scrubbed() {
  local name kept=()
  for name in PATH HOME USER LANG LC_ALL TERM TMPDIR CARGO_HOME RUSTUP_HOME RUSTUP_TOOLCHAIN \
    RUSTC RUSTC_WRAPPER RUSTFLAGS CC CXX AR SSL_CERT_FILE SSL_CERT_DIR \
    http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -z "${!name+set}" ] || kept+=("$name=${!name}")
  done
  while IFS= read -r name; do
    case $name in
      CARGO_*TOKEN* | CARGO_*CREDENTIAL*) ;;
      CARGO_*) kept+=("$name=${!name}") ;;
    esac
  done < <(compgen -e)
  env -i "${kept[@]}" "$@"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# DIR/bin when DIR holds a binary installed earlier whose SHA-256 is WANT; else DIR is
# removed, to be installed again.
cached() {
  local dir=$1 want=$2 have
  [ -e "$dir" ] || return 1
  if [ -x "$dir/bin/uworker-image" ]; then
    have=$(sha256_of "$dir/bin/uworker-image")
    if [ "$have" = "$want" ]; then
      echo "$dir/bin"
      return 0
    fi
    say "the cached $dir/bin/uworker-image has sha256 $have, not $want: not using it, installing again"
  fi
  rm -rf "$dir"
  return 1
}

# The workflow's own binary (upload-artifact drops the mode bits: installed as 0755).
install_given() {
  local given=$UWORKER_IMAGE_ACTION_BINARY want=${UWORKER_IMAGE_ACTION_BINARY_SHA256:-} have dir
  [ -f "$given" ] || {
    say "input binary: $given is not a file (download the artifact first)"
    return 1
  }
  if [ -n "$want" ] && { [ "${#want}" -ne 64 ] || [[ $want == *[!0-9a-f]* ]]; }; then
    say "input binary-sha256: \`$want\` is not 64 lowercase hex digits"
    return 1
  fi
  have=$(sha256_of "$given")
  if [ -n "$want" ] && [ "$have" != "$want" ]; then
    say "input binary: $given has sha256 $have, not $want (input binary-sha256): refusing it"
    return 1
  fi
  dir=$root/binary-$have
  cached "$dir" "$have" && return 0
  mkdir -p "$dir/bin"
  install -m 0755 "$given" "$dir/bin/uworker-image"
  echo "$dir/bin"
}

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

# The hex digest of FILE (a .sha256) when it is the single line `<64 hex>  ASSET` or
# `<64 hex> *ASSET`: a checksum file naming another file, or several, checks nothing.
expected_sha256() {
  local file=$1 content pattern='^([0-9a-f]{64}) [ *](.*)$'
  content=$(
    cat "$file"
    echo .
  )
  content=${content%.}
  content=${content%$'\n'}
  if [[ $content == *$'\n'* || $content == *$'\r'* ]]; then
    say "$asset.sha256 has more than one line: refusing $asset (a release's .sha256 names its asset alone)"
    return 1
  fi
  if ! [[ $content =~ $pattern ]]; then
    say "$asset.sha256 is not \`<64 hex digits>  $asset\`: refusing $asset"
    return 1
  fi
  if [ "${BASH_REMATCH[2]}" != "$asset" ]; then
    say "$asset.sha256 names \`${BASH_REMATCH[2]}\`, not $asset: refusing $asset"
    return 1
  fi
  echo "${BASH_REMATCH[1]}"
}

# GitHub's build provenance attestation, when gh is there to check it.
verify_provenance() {
  local file=$1 tag=$2 token=${UWORKER_IMAGE_ACTION_GITHUB_TOKEN:-}
  if ! command -v gh >/dev/null 2>&1; then
    say "gh is not installed: the build provenance of $asset is not verified (its checksum is)"
    return 0
  fi
  if [ -z "$token" ]; then
    say "no github-token for gh: the build provenance of $asset is not verified (its checksum is)"
    return 0
  fi
  # Built by this repository's release workflow, from this tag: not by any workflow or
  # fork of it, nor by a run of it on another ref.
  local workflow=$repository/.github/workflows/release.yml
  say "verifying the build provenance of $asset: gh attestation verify --repo $repository --signer-workflow $workflow --source-ref refs/tags/$tag"
  if ! GH_TOKEN=$token GH_HOST=$host gh attestation verify "$file" --repo "$repository" \
    --signer-workflow "$workflow" --source-ref "refs/tags/$tag" >&2; then
    say "the build provenance attestation of $asset does not verify for $repository: refusing it"
    return 1
  fi
}

# The tag `latest` points at now: GitHub answers .../releases/latest with a redirect to
# .../releases/tag/TAG. Status 1: no latest release (a build from source may stand in);
# 2: a redirect elsewhere.
latest_tag() {
  local url=$server/$repository/releases/latest where prefix head tag
  prefix=$server/$repository/releases/tag/
  where=$(curl -fsS --retry 3 --retry-delay 2 --max-filesize 1000000 -o /dev/null \
    -w '%{redirect_url}' "$url") || return 1
  if [ -z "$where" ] || [ "${where%/}" = "$server/$repository/releases" ]; then
    say "$repository has no latest release ($url)"
    return 1
  fi
  # GitHub may spell OWNER/REPO as the repository does; a tag is one path segment.
  head=${where:0:${#prefix}} tag=${where:${#prefix}}
  if [ "${head,,}" != "${prefix,,}" ] || ! [[ $tag =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
    say "$url leads to $where, not a tag of $repository: refusing it"
    return 2
  fi
  say "latest is $tag ($url)"
  echo "$tag"
}

# URL.sha256 into DIR, and its digest of the asset on stdout.
release_sha256() {
  local url=$1 dir=$2
  curl -fsSL --retry 3 --retry-delay 2 --max-filesize 4096 -o "$dir/$asset.sha256" "$url.sha256" || {
    say "$asset has no $asset.sha256 beside it ($url.sha256): refusing it"
    return 1
  }
  expected_sha256 "$dir/$asset.sha256"
}

# 0 when DIR (a release installed earlier) is still TAG's: its asset has the hash that the
# release's .sha256 at URL says now (and its attestation, when gh is there), its binary is
# the asset's. 1 when it is not: DIR removed, to be installed again. 2 when the release
# cannot tell (its .sha256 out of reach or malformed): refused.
reusable_release() {
  local dir=$1 tag=$2 url=$3 tmp=$4 want have unpacked
  if [ -f "$dir/$asset" ] && [ -x "$dir/bin/uworker-image" ]; then
    want=$(release_sha256 "$url" "$tmp") || {
      say "cannot check the cached uworker-image against its release ($dir): refusing it"
      return 2
    }
    have=$(sha256_of "$dir/$asset")
    unpacked=$(tar -xzOf "$dir/$asset" uworker-image 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$have" = "$want" ] && [ "$unpacked" = "$(sha256_of "$dir/bin/uworker-image")" ]; then
      verify_provenance "$dir/$asset" "$tag" || return 2
      return 0
    fi
    say "the cached $dir is not $repository's $tag (its asset has sha256 $have, the release's .sha256 says $want; or its binary is not the asset's): not using it, installing again"
  fi
  rm -rf "$dir"
  return 1
}

# Exit status 1: no such release (a build from source may stand in); 2: the release
# exists but is not trustworthy (no fallback to a build).
install_release() {
  local tag=$version
  if [ "$version" = latest ]; then
    tag=$(latest_tag) || return $?
  fi
  # The tag names a directory below: no `..` (git allows none in a ref), no odd bytes.
  if ! [[ $tag =~ ^[A-Za-z0-9][A-Za-z0-9._+/-]*$ ]] || [[ $tag == *..* || $tag == *//* || $tag == */ ]]; then
    say "input version: \`$tag\` is not a release tag: refusing it"
    return 2
  fi
  # The concrete tag's assets: `latest` may move while this runs.
  local url=$server/$repository/releases/download/$tag/$asset
  # One directory per server, repository and tag: a fork's v1.0.0 is not upstream's.
  local dir=$root/release/$host/$repository/$tag
  local tmp want have status=0
  tmp=$(mktemp -d "${RUNNER_TEMP:-/tmp}/uworker-image-download.XXXXXX")
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  reusable_release "$dir" "$tag" "$url" "$tmp" || status=$?
  case $status in
    0)
      echo "$dir/bin"
      return 0
      ;;
    2) return 2 ;;
  esac
  say "downloading $url"
  curl -fsSL --retry 3 --retry-delay 2 --max-filesize 200000000 -o "$tmp/$asset" "$url" || return 1
  # The asset is there: from here on, anything amiss refuses the release (status 2). A
  # release without its checksum is not one to trust, nor a reason to build instead.
  want=$(release_sha256 "$url" "$tmp") || return 2
  have=$(sha256_of "$tmp/$asset")
  if [ "$have" != "$want" ]; then
    say "checksum mismatch for $asset: sha256 $have, its .sha256 says $want: refusing it"
    return 2
  fi
  verify_provenance "$tmp/$asset" "$tag" || return 2
  # Called as `$(install_release) || status=$?`, where set -e does not hold: every step
  # says how it failed. The asset is kept: a later run checks the cache against it.
  mkdir -p "$dir/bin" || return 2
  tar -xzf "$tmp/$asset" -C "$dir/bin" uworker-image || {
    say "$asset holds no uworker-image: refusing it"
    rm -rf "$dir"
    return 2
  }
  mv "$tmp/$asset" "$dir/$asset" || return 2
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
  # No release to check it against: the hash recorded when it was built.
  cached "$dir" "$(cat "$dir/uworker-image.sha256" 2>/dev/null)" && return 0
  say "building from source: cargo install --locked --path $action_path"
  scrubbed cargo install --locked --quiet --root "$dir" --path "$action_path" >&2 || return 1
  sha256_of "$dir/bin/uworker-image" >"$dir/uworker-image.sha256"
  echo "$dir/bin"
}

warn_about_secrets
bin_dir=''
if [ -n "${UWORKER_IMAGE_ACTION_BINARY:-}" ]; then
  bin_dir=$(install_given)
elif [ "$version" != source ] && [ -n "$repository" ] && [ -n "$asset" ]; then
  status=0
  bin_dir=$(install_release) || status=$?
  [ "$status" -ne 2 ] || exit 1
  [ "$status" -eq 0 ] || { bin_dir=''; say "no release asset for $version: falling back to a build from source"; }
fi
[ -n "$bin_dir" ] || bin_dir=$(install_source)

"$bin_dir/uworker-image" --version >&2
[ -z "${GITHUB_PATH:-}" ] || echo "$bin_dir" >>"$GITHUB_PATH"
echo "$bin_dir/uworker-image"
