#!/usr/bin/env bash
# The worker: system user `uworker` (in group docker), a venv in /opt/uworker/venv and
# the worker package from WORKER_SOURCE (a pip requirement). Runs as root.
set -euo pipefail

: "${WORKER_SOURCE:?WORKER_SOURCE must name the worker package (a pip requirement)}"
venv=/opt/uworker/venv

getent group docker >/dev/null || groupadd --system docker
if ! id uworker >/dev/null 2>&1; then
  useradd --system --create-home --home-dir /var/lib/uworker \
    --shell /usr/sbin/nologin --groups docker uworker
fi
usermod --append --groups docker uworker

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip
# The worker needs ConcurrentLogHandler 0.9.1, whose setup.py uses use_2to3 (removed in
# setuptools 58) and downloads setuptools when built in isolation: build it against an
# older setuptools, without isolation.
"$venv/bin/pip" install --quiet 'setuptools<58' wheel
"$venv/bin/pip" install --quiet --no-build-isolation "$WORKER_SOURCE"

test -x "$venv/bin/uworker" || { echo "30-worker.sh: $venv/bin/uworker missing after install" >&2; exit 1; }
