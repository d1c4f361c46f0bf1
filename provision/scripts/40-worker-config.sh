#!/usr/bin/env bash
# Installs the worker config that uworker-image generated (shell-quoted `export` lines)
# as /etc/uworker/uworker.conf, readable by uworker only. Reads UWORKER_CONFIG_UPLOAD.
# Never prints the file: it holds passwords.
set -euo pipefail

upload=${UWORKER_CONFIG_UPLOAD:-/tmp/uworker.conf}
if [ ! -f "$upload" ]; then
  echo "40-worker-config.sh: $upload is missing: the worker_config step must run first" >&2
  exit 1
fi

install -d -m 0750 -o root -g uworker /etc/uworker
install -m 0600 -o uworker -g uworker "$upload" /etc/uworker/uworker.conf
rm -f "$upload"
