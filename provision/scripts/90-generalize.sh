#!/usr/bin/env bash
# Built images only, the last step before the snapshot: turns the build server into an
# image that clones into distinct machines (as DIB's sysprep and runtime-ssh-host-keys
# elements and `cloud-init clean` do). Never on a test host: that is a live machine.
# Removes what identifies the build server (machine-id, SSH host keys, cloud-init's
# "already ran" state, packer's SSH key) and what only the build needed (apt's lists and
# package cache, logs, journal, /tmp, shell histories, the random seed, the uploads);
# /etc/uworker and the installed worker stay. Runs as root (through sudo); safe to run
# again. The SSH session it runs over stays up: sshd holds its keys in memory.
set -euo pipefail

say() { echo "90-generalize.sh: $*"; }

# cloud-init's instance state and logs: a clone runs cloud-init as a first boot.
if command -v cloud-init >/dev/null 2>&1; then
  # --machine-id is newer than some releases' cloud-init; the step below does its job.
  cloud-init clean --logs --machine-id >/dev/null 2>&1 || cloud-init clean --logs
  say "cleaned cloud-init's state and logs"
fi

# An empty machine-id (not a missing one): systemd writes a new one at the next boot,
# without treating it as a first boot (which would re-apply unit presets). D-Bus reads
# its own copy: a link to systemd's keeps the two one.
if [ -e /etc/machine-id ]; then
  truncate -s 0 /etc/machine-id
else
  install -m 0444 /dev/null /etc/machine-id
fi
if [ -d /var/lib/dbus ]; then
  ln -sfn /etc/machine-id /var/lib/dbus/machine-id
fi
say "emptied /etc/machine-id"

# SSH host keys: each clone makes its own at boot, with or without cloud-init.
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
cat >/etc/systemd/system/uworker-ssh-host-keys.service <<'UNIT'
[Unit]
Description=SSH host keys for a machine cloned from the uworker image
# Not Before=ssh.socket: sockets come before basic.target, which this unit follows, and
# that cycle would make systemd drop a job (Ubuntu 24.04 socket-activates ssh). A
# connection starts ssh.service, which wants this unit and waits for it.
Before=ssh.service sshd.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
UNIT
chmod 0644 /etc/systemd/system/uworker-ssh-host-keys.service
# `enable` only writes its symlink; a reload makes systemd see the unit on this boot too.
systemctl enable uworker-ssh-host-keys.service
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi
say "removed the SSH host keys; uworker-ssh-host-keys.service makes new ones at boot"

# Packer's temporary key (cloud-init wrote the server's key pair to the build user and to
# root). A clone's cloud-init authorizes the clone's own key pair.
build_user=${SUDO_USER:-}
if [ -n "$build_user" ] && [ "$build_user" != root ]; then
  build_home=$(getent passwd "$build_user" | cut -d: -f6)
  [ -z "$build_home" ] || rm -f "$build_home/.ssh/authorized_keys"
fi
rm -f /root/.ssh/authorized_keys
say "removed the build's authorized_keys (${build_user:-root}, root)"

# apt: the package cache and the lists (a clone runs `apt-get update` before installing).
if command -v apt-get >/dev/null 2>&1; then
  apt-get clean
fi
if [ -d /var/lib/apt/lists ]; then
  find /var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name lock ! -name partial \
    -exec rm -rf {} +
  if [ -d /var/lib/apt/lists/partial ]; then
    find /var/lib/apt/lists/partial -mindepth 1 -delete
  fi
fi
say "emptied apt's package cache and lists"

# Logs: the journal rotated and every archived file vacuumed (the new active files hold
# only what follows, up to the shutdown), every other file under /var/log emptied, rotated
# copies removed.
if command -v journalctl >/dev/null 2>&1; then
  journalctl --rotate >/dev/null 2>&1 || true
  journalctl --vacuum-size=1 >/dev/null 2>&1 || true
fi
find /var/log -path /var/log/journal -prune -o -type f \
  \( -name '*.gz' -o -name '*.xz' -o -name '*.[0-9]' -o -name '*.old' \) -print0 |
  xargs -0 -r rm -f
find /var/log -path /var/log/journal -prune -o -type f -size +0 -print0 |
  xargs -0 -r truncate -s 0
say "rotated and vacuumed the journal, emptied /var/log"

# Temporary files, the uploaded worker source among them. systemd-private-* belong to
# running services; systemd removes them as they stop. The run's upload directory
# (uworker-image.*, this script's own, maybe a tmpfs) is the tool's last step's to remove.
find /tmp /var/tmp -mindepth 1 -maxdepth 1 ! -name 'systemd-private-*' \
  ! -name 'uworker-image.*' -exec rm -rf {} +
rm -rf /run/uworker-provision
say "emptied /tmp and /var/tmp"

# Shell histories, and the random seed (each clone must not start from the same one).
# Stopping systemd-random-seed saves the seed now, not at the snapshot's shutdown.
rm -f /root/.*_history /home/*/.*_history
if [ -d /run/systemd/system ]; then
  systemctl stop systemd-random-seed.service 2>/dev/null || true
fi
rm -f /var/lib/systemd/random-seed
say "removed shell histories and the random seed"

# Unused blocks cost upload time on a real cloud; not every disk (or container) trims.
if command -v fstrim >/dev/null 2>&1 && fstrim --all >/dev/null 2>&1; then
  say "trimmed unused blocks"
else
  say "fstrim is not supported here (skipped)"
fi
say "done: the image is generalized"
