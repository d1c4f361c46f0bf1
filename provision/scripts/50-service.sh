#!/usr/bin/env bash
# Installs the worker's systemd unit, its start command and the mode drop-in chosen from
# the installed config: command mode when UWORKER_JOB_CMD and UWORKER_JOB_API_PROJECT are
# both set, docker execution mode otherwise; puts user uworker in group docker in docker
# mode only. Enables the unit at boot; does not start it
# (on the build VM a running worker would claim real jobs just before the snapshot).
# Reads UWORKER_FILES (the uploaded provision/files). Changes nothing when all is in
# place; otherwise asks for a worker restart (/run/uworker-provision/restart). Runs as root.
set -euo pipefail

files=${UWORKER_FILES:?UWORKER_FILES must name the uploaded provision/files directory}
config=/etc/uworker/uworker.conf
[ -d "$files" ] || { echo "50-service.sh: $files is missing: the files upload step must run first" >&2; exit 1; }
[ -f "$config" ] || { echo "50-service.sh: $config is missing: 40-worker-config.sh must run first" >&2; exit 1; }

# Read the config as the worker's start command will: in a shell, in a subshell.
if (
  set +u
  # shellcheck source=/dev/null
  . "$config"
  [ -n "${UWORKER_JOB_CMD:-}" ] && [ -n "${UWORKER_JOB_API_PROJECT:-}" ]
); then
  mode='command'
else
  mode=docker
fi

changed=0
# install_file SRC DEST MODE: installs when the content or mode differs.
install_file() {
  if ! cmp -s "$1" "$2" || [ "$(stat -c %a "$2")" != "$3" ]; then
    install -D -m "$3" -o root -g root "$1" "$2"
    changed=1
  fi
}
install_file "$files/uworker-run" /opt/uworker/bin/uworker-run 755
install_file "$files/uworker.service" /etc/systemd/system/uworker.service 644
install_file "$files/mode-$mode.conf" /etc/systemd/system/uworker.service.d/mode.conf 644
rm -rf "$files"

# Group docker is root-equivalent: the worker is in it in docker execution mode only.
in_docker_group() { id -nG uworker | tr ' ' '\n' | grep -qx docker; }
if [ "$mode" = docker ] && ! in_docker_group; then
  getent group docker >/dev/null || groupadd --system docker
  usermod --append --groups docker uworker
  changed=1
elif [ "$mode" = command ] && in_docker_group; then
  gpasswd --delete uworker docker >/dev/null
  changed=1
fi

if [ "$changed" = 1 ]; then
  echo "50-service.sh: installed the uworker unit ($mode mode)"
  install -d -m 0755 /run/uworker-provision
  touch /run/uworker-provision/restart
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
  fi
else
  echo "50-service.sh: the uworker unit is in place ($mode mode)"
fi
systemctl is-enabled --quiet uworker.service || systemctl enable uworker.service
