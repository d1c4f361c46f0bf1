#!/usr/bin/env bash
# Built images only, the last step before the snapshot: turns the build server into an
# image that clones into distinct machines (as DIB's sysprep and runtime-ssh-host-keys
# elements and `cloud-init clean` do). Never on a test host: that is a live machine.
# Removes what identifies the build server (machine-id, SSH host keys, cloud-init's
# "already ran" state, packer's SSH key, its hostname, docker's engine identity, its DHCP
# leases) and what only the build needed (apt's lists and
# package cache, logs, journal, /tmp, shell histories, the random seed, the uploads);
# /etc/uworker and the installed worker stay. Runs as root (through sudo); safe to run
# again. The SSH session it runs over stays up: sshd holds its keys in memory.
set -euo pipefail

say() { echo "90-generalize.sh: $*"; }

# cloud-init's instance state (/var/lib/cloud but its seed) and logs: a clone runs
# cloud-init's per-instance stage as a first boot, with its own instance-id, key pair and
# hostname. Not --machine-id: that writes "uninitialized", which makes the next boot a
# systemd first boot; the machine-id step below empties it instead.
if command -v cloud-init >/dev/null 2>&1; then
  # Its final stage may still run on a fast build: clean what it has written by the end.
  cloud-init status --wait >/dev/null 2>&1 || true
  cloud-init clean --logs
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
# cloud-init, where it runs, makes a clone's keys itself in its network stage (named
# cloud-init-network.service since 24.3): this unit only fills in.
After=cloud-init.service cloud-init-network.service
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

# The hostname: a clone's cloud-init sets its own from the instance's metadata; until it
# does (or without it) the clone is `localhost`, never the build server.
build_host=$(uname -n)
echo localhost >/etc/hostname
if [ -f /etc/hosts ] && [ "$build_host" != localhost ]; then
  # The build server's name and FQDNs out of every line (cloud-init's manage_etc_hosts
  # writes `127.0.1.1 NAME.DOMAIN NAME`);
  # a line is dropped only when no other name is left on it (`127.0.0.1 localhost build`
  # keeps `localhost`). Comments and blank lines stay as they are.
  awk -v h="$build_host" '
    /^[[:space:]]*(#|$)/ { print; next }
    {
      line = $1; kept = 0
      for (i = 2; i <= NF; i++)
        if ($i != h && index($i, h ".") != 1) { line = line " " $i; kept++ }
      if (kept > 0) print line
    }' /etc/hosts >/etc/hosts.uworker-new
  cat /etc/hosts.uworker-new >/etc/hosts
  rm -f /etc/hosts.uworker-new
fi
say "reset the hostname to localhost (was $build_host)"

# Docker's engine identity (key.json of older engines, engine-id of newer ones): each
# clone's engine makes its own when it first starts.
rm -f /etc/docker/key.json /var/lib/docker/engine-id
say "removed docker's engine identity"

# systemd-creds' host key, if the build made one: a clone makes its own.
rm -f /var/lib/systemd/credential.secret

# The build server's DHCP leases (and dhcpcd's DUID): a clone asks for its own address.
rm -rf /var/lib/dhcp/* /var/lib/dhcpcd/* /var/lib/dhcpcd5/*
rm -f /var/lib/NetworkManager/*lease* /var/lib/systemd/network/*lease*
say "removed the DHCP leases"

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
