#!/usr/bin/env bash
# The worker package in its own venv, /opt/uworker/venv (owned by root: the worker cannot
# change its own code). WORKER_SOURCE is a pip requirement, or the copy of a local source
# directory or package file that uworker-image uploaded to /tmp/uworker-worker-source.
# Installs only when the source changed (a stamp records what was installed); then asks
# for a worker restart (/run/uworker-provision/restart). Runs as root.
# A URL's credentials (git+https://user:TOKEN@host/...) never reach a command line or a
# file on disk: pip and git get the URL without them, and git reads them from a 0600
# credential file on /run (a tmpfs), removed when this script ends, however it ends.
set -euo pipefail

: "${WORKER_SOURCE:?WORKER_SOURCE must name the worker package (a pip requirement or a path)}"
# Out of the environment: pip, git and every setup.py pip builds would inherit the URL.
worker_source=$WORKER_SOURCE
unset WORKER_SOURCE
venv=/opt/uworker/venv
stamp=/opt/uworker/installed-source
upload=/tmp/uworker-worker-source

# The requirement without its HTTP(S) URLs' userinfo, and `scheme://userinfo@host` for
# each (bash alone: the credentials go into no process's arguments). Only http(s): an ssh
# URL's user (git+ssh://git@host) is no secret and ssh needs it (uworker-image refuses a
# password there, and a token without a user, which git's credential store ignores).
requirement=$worker_source
credentials=''
url_re='^(.*[^A-Za-z0-9+.-]|)(git\+https?|https?)://([^/?#[:space:]]*)@([^/?#@[:space:]]*)(.*)$'
while [[ $requirement =~ $url_re ]]; do
  scheme=${BASH_REMATCH[2]}
  credentials+="${scheme##*+}://${BASH_REMATCH[3]}@${BASH_REMATCH[4]}"$'\n'
  requirement="${BASH_REMATCH[1]}$scheme://${BASH_REMATCH[4]}${BASH_REMATCH[5]}"
done

# git (which pip runs for git+ URLs) asks its credential helper: only this file's,
# through the environment (GIT_CONFIG_COUNT, git 2.31+), never a prompt.
credential_dir=''
artifact_dir=''
cleanup() {
  [ -z "$credential_dir" ] || rm -rf "$credential_dir"
  [ -z "$artifact_dir" ] || rm -rf "$artifact_dir"
}
trap cleanup EXIT
use_credentials() {
  # /run is a tmpfs: the file never reaches the disk (no fallback to one that would).
  credential_dir=$(mktemp -d /run/uworker-git.XXXXXXXX)
  (umask 077 && printf '%s' "$credentials" >"$credential_dir/credentials")
  export GIT_CONFIG_COUNT=2 GIT_TERMINAL_PROMPT=0
  export GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0=''
  export GIT_CONFIG_KEY_1=credential.helper
  export GIT_CONFIG_VALUE_1="store --file=$credential_dir/credentials"
}

# What is being installed: the requirement itself, or the digest of the uploaded content.
if [ -d "$worker_source" ]; then
  wanted="directory $(cd "$worker_source" && find . -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
elif [ -f "$worker_source" ]; then
  wanted="file $(basename "$worker_source") $(sha256sum <"$worker_source" | cut -d' ' -f1)"
else
  # Without a URL's credentials (user:TOKEN@): the stamp stays in the image.
  wanted="requirement $requirement"
fi

# A pinned artifact (`[name @ ]http(s)://HOST/FILE#...sha256=HEX...`, as uworker-image's
# plan pins a requirement or a URL): downloaded here and checked against its sha256
# before pip sees it, then pip installs the checked file (and checks the hash again).
artifact_re='^(([A-Za-z0-9._-]+(\[[^]]*\])?)[[:space:]]*@[[:space:]]*)?(https?://[^#[:space:];]+)#([^[:space:];]*)(.*)$'
sha256_re='(^|&)sha256=([0-9a-fA-F]{64})(&|$)'
check_artifact() {
  [[ $requirement =~ $artifact_re ]] || return 0
  local name=${BASH_REMATCH[2]} url=${BASH_REMATCH[4]} fragment=${BASH_REMATCH[5]}
  local rest=${BASH_REMATCH[6]}
  [[ $fragment =~ $sha256_re ]] || return 0
  local sha256=${BASH_REMATCH[2],,}
  artifact_dir=$(mktemp -d /tmp/uworker-artifact.XXXXXXXX)
  local file
  file="$artifact_dir/$(basename "$url")"
  python3 - "$url" "$file" <<'PY'
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=600) as answer, open(sys.argv[2], "wb") as out:
    while chunk := answer.read(1 << 20):
        out.write(chunk)
PY
  local got
  got=$(sha256sum <"$file" | cut -d' ' -f1)
  if [ "$got" != "$sha256" ]; then
    echo "35-worker.sh: $url has sha256 $got, not the pinned $sha256: the artifact changed since plan pinned it (plan again to pin what it is now)" >&2
    exit 1
  fi
  echo "35-worker.sh: $(basename "$url") matches its pinned sha256"
  if [ -n "$name" ]; then
    requirement="$name @ file://$file#sha256=$sha256$rest"
  else
    requirement="$file$rest"
  fi
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$venv/bin/uworker" ]; then
  echo "35-worker.sh: the worker is installed from this source already"
else
  [ -z "$credentials" ] || use_credentials
  check_artifact
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  pip=("$venv/bin/pip" --disable-pip-version-check --no-cache-dir --quiet)
  if "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
    # The worker needs ConcurrentLogHandler 0.9.1, whose setup.py uses use_2to3 (gone in
    # setuptools 58) and downloads setuptools when built in isolation: build it against
    # an older setuptools, without isolation.
    "${pip[@]}" install 'setuptools==57.5.0' 'wheel==0.45.1'
    "${pip[@]}" install --no-build-isolation "$requirement"
  else
    # Python 3.12+ (Ubuntu 24.04): setuptools < 58 no longer runs there, so
    # ConcurrentLogHandler 0.9.1 cannot be built at all. Install the worker and its other
    # requirements; without the module it uses the standard library's log handler.
    "${pip[@]}" install 'setuptools==75.8.0' 'wheel==0.45.1'
    "${pip[@]}" install --no-build-isolation --no-deps "$requirement"
    requirements=$("$venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import re

for dist in metadata.distributions():
    if any(e.group == "console_scripts" and e.name == "uworker" for e in dist.entry_points):
        for requirement in dist.requires or []:
            name = re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0]
            if name.lower() != "concurrentloghandler" and "extra ==" not in requirement:
                print(requirement)
PY
    )
    if [ -n "$requirements" ]; then
      mapfile -t requirements <<<"$requirements"
      "${pip[@]}" install "${requirements[@]}"
    fi
    echo "35-worker.sh: Python 3.12+: the worker is installed without ConcurrentLogHandler (it falls back to the standard library's log handler)"
  fi
  test -x "$venv/bin/uworker" || {
    echo "35-worker.sh: $venv/bin/uworker missing after the install: is WORKER_SOURCE the worker?" >&2
    exit 1
  }
  printf '%s\n' "$wanted" >"$stamp"
  install -d -m 0755 /run/uworker-provision
  touch /run/uworker-provision/restart
  echo "35-worker.sh: installed the worker ($wanted)"
fi

# The uploaded copy (and pip's build files in it) is not part of the image.
case $worker_source in
  "$upload" | "$upload"/*) rm -rf "$upload" ;;
esac
