#!/usr/bin/env bash
# A booted systemd test host: a Debian 12 or 13 root filesystem with systemd as PID 1 under
# systemd-nspawn, reachable over SSH on a loopback address of its own. The nearest thing
# to a cloud VM this machine can run. Run as root; needs debootstrap, systemd-container
# and zstd (scripts/setup.sh installs them).
#
# Interface (stable; the Rust wrapper tests/services/common/systemd_host.rs and other tests use it):
#
#   systemd-host.sh rootfs [--release bookworm|trixie] [--tarball]
#       Ensures the cached rootfs tarball (built once per release with debootstrap, 1-3 min) and an
#       unpacked pristine copy beside it; prints the pristine directory (or, with
#       --tarball, the tarball). Never boot the pristine directory persistently: copy it
#       (`cp -a --reflink=auto DIR NEW`) or unpack the tarball
#       (`tar --zstd -xpf TARBALL -C NEW`).
#       The rootfs: minbase Debian 12 (bookworm, Python 3.11, the default) or Debian 13
#       (trixie, Python 3.13): debootstrap fetches from Debian's archive, the one
#       distribution registry this workplace reaches; + systemd, dbus, openssh-server,
#       sudo, python3 (no python3-venv, like a cloud image), ca-certificates with this machine's extra
#       CAs and /etc/pip.conf trusting them; user `ubuntu` with NOPASSWD sudo and no
#       password; getty and networkd-wait-online masked.
#       cloud-init (Debian's package) as on an Ubuntu cloud image: datasource NoCloud (then
#       None), network config disabled (the host shares this machine's network), default
#       user `ubuntu`, /etc/hosts managed. It runs only on a host booted with a NoCloud
#       seed (`boot --seed`: the Compute stand-in gives each server one).
#       sshd accepts no RSA key at all (PubkeyAcceptedAlgorithms: ed25519 and ECDSA only):
#       HashiCorp's packer 1.6.6 signs RSA only as ssh-rsa (SHA-1), which OpenSSH 8.8+
#       refuses, so the lab refuses what the field's packer cannot do.
#
#   systemd-host.sh boot --state DIR [--root DIR | --release R] [--address 127.0.0.N]
#                        [--port N] [--authorized-keys FILE] [--seed DIR]
#                        [--volatile|--persistent] [--timeout S]
#       Boots the host in the background and returns once its sshd answers (exit 0), or
#       fails (exit 1) with the tail of the boot log. DIR (created) holds nspawn.pid,
#       boot.log (the console), and the files bound into the host. Defaults: --root the
#       pristine rootfs of --release (bookworm), --address 127.0.0.1, --port 22,
#       --volatile, --timeout 30.
#       --volatile: every write goes to a tmpfs overlay and vanishes at stop.
#       --persistent: writes land in --root (required, and not the pristine copy), so the
#       provisioned root can be tarred afterwards (stop the host first).
#       sshd listens on ADDRESS:PORT only (the host shares this machine's network).
#       --authorized-keys FILE: sshd also accepts the keys of FILE for every user (FILE is
#       copied, world-readable: public keys). Without it no key is bound in: the host
#       accepts only its users' own ~/.ssh/authorized_keys (on a Compute stand-in server,
#       what cloud-init wrote from the seed).
#       --seed DIR: a NoCloud seed (meta-data, user-data), bound read-only at
#       /var/lib/cloud/seed/nocloud: cloud-init runs at boot and reads it there. Like a
#       config drive it is no part of the root, so a tarred root never holds it.
#       Without --seed, cloud-init is disabled (cloud-init=disabled on init's command
#       line, which cloud-init reads as the kernel's in a container).
#
#   systemd-host.sh stop --state DIR [--grace S]
#       SIGTERM to nspawn (a clean poweroff), up to S seconds (default 15: a unit that
#       ignores SIGTERM holds the poweroff), then a second SIGTERM (nspawn terminates the
#       container at once), then SIGKILL to the container's init and nspawn. Leaves no
#       process behind. Succeeds when the host is not running.
#
# Environment: UWORKER_IMAGE_TEST_CACHE (default ~/.cache/uworker-image-test) holds the rootfs;
# DEBIAN_MIRROR overrides the Debian mirror (default: the one apt uses here).
set -euo pipefail

# Bump when the rootfs recipe below changes: the cache keys on it.
readonly ROOTFS_VERSION=2
readonly SSH_USER=ubuntu
cache=${UWORKER_IMAGE_TEST_CACHE:-$HOME/.cache/uworker-image-test}/systemd-host
release=bookworm
tarball='' pristine=''

# set_release NAME: the release and its cache paths.
set_release() {
  case $1 in
    bookworm | trixie) release=$1 ;;
    *) die "unknown release '$1' (bookworm or trixie: Debian's archive is the only one reachable here)" ;;
  esac
  tarball=$cache/rootfs-$release-v$ROOTFS_VERSION.tar.zst
  pristine=$cache/rootfs-$release-v$ROOTFS_VERSION
}

die() {
  echo "systemd-host.sh: $*" >&2
  exit 1
}

mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then
    echo "$DEBIAN_MIRROR"
  elif [ -f /etc/apt/sources.list.d/debian.sources ]; then
    awk '$1 == "URIs:" {print $2; exit}' /etc/apt/sources.list.d/debian.sources
  else
    echo http://deb.debian.org/debian
  fi
}

build_tarball() {
  local work
  work=$(mktemp -d "$cache/build.XXXXXX")
  # shellcheck disable=SC2064 # expand now: the trap must remove this build's directory
  trap "rm -rf '$work'" EXIT
  local root=$work/root t0
  t0=$(date +%s)
  echo "systemd-host.sh: building the rootfs with debootstrap (once; cached in $cache)" >&2
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,sudo,ca-certificates,python3 \
    "$release" "$root" "$(mirror)" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # Name resolution as this machine's: nspawn copies its resolv.conf over a plain file,
  # not over a link to a systemd-resolved that has no upstream servers in here.
  if [ -e "$root/lib/systemd/system/systemd-resolved.service" ]; then
    chroot "$root" systemctl mask systemd-resolved.service >/dev/null 2>&1
  fi
  if [ -L "$root/etc/resolv.conf" ]; then
    rm "$root/etc/resolv.conf"
    : >"$root/etc/resolv.conf"
  fi
  chroot "$root" sh -euc "
    useradd -m -s /bin/bash $SSH_USER
    usermod -p '*' $SSH_USER
    echo '$SSH_USER ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/$SSH_USER
    chmod 440 /etc/sudoers.d/$SSH_USER
    systemctl mask getty@tty1.service console-getty.service systemd-networkd-wait-online.service
    systemctl enable ssh.service"
  install_cloud_init "$root" "$work/cloud-init.log"
  refuse_rsa "$root"
  # This machine reaches the package registries through TLS that only its own trust
  # store accepts: give the host the same trust, for apt and pip alike.
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$root" update-ca-certificates >/dev/null
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
  # Mount points for what `boot` binds in; sshd reads the keys for every user from there.
  : >"$root/etc/ssh/test-host-authorized_keys"
  : >"$root/etc/ssh/sshd_config.d/test-host.conf"
  printf 'AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/test-host-authorized_keys\nPasswordAuthentication no\n' \
    >"$root/etc/ssh/sshd_config.d/00-test-host-keys.conf"
  echo uwtest-host >"$root/etc/hostname"
  echo "127.0.1.1 uwtest-host" >>"$root/etc/hosts"
  tar --zstd -cpf "$work/rootfs.tar.zst" -C "$root" .
  mv "$work/rootfs.tar.zst" "$tarball"
  echo "systemd-host.sh: rootfs built in $(($(date +%s) - t0)) s" >&2
  rm -rf "$work"
  trap - EXIT
}

# install_cloud_init ROOT LOG: Debian's cloud-init, set up as an Ubuntu cloud image's.
install_cloud_init() {
  local root=$1 log=$2 resolv
  # apt needs this machine's name resolution for a moment; the file goes back as it was.
  resolv=$(mktemp)
  cp -a "$root/etc/resolv.conf" "$resolv"
  cp --remove-destination /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" sh -euc '
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends cloud-init
    apt-get clean
    rm -rf /var/lib/apt/lists/*' >"$log" 2>&1 ||
    { tail -20 "$log" >&2; die "installing cloud-init failed"; }
  cp -a "$resolv" "$root/etc/resolv.conf"
  rm -f "$resolv"
  cat >"$root/etc/cloud/cloud.cfg.d/90-uwtest-host.cfg" <<'CFG'
# The test host's first boot, as an Ubuntu cloud image's on OpenStack: a NoCloud seed the
# Compute stand-in writes into the server's root stands for Nova's metadata.
datasource_list: [NoCloud, None]
# The host shares this machine's network: nothing to configure.
network:
  config: disabled
manage_etc_hosts: true
# No locales package (minbase): cloud-init's locale module would fail on every boot.
locale: false
system_info:
  default_user:
    name: ubuntu
    lock_passwd: true
    gecos: Ubuntu
    groups: [adm, sudo]
    sudo: ["ALL=(ALL) NOPASSWD:ALL"]
    shell: /bin/bash
CFG
}

# refuse_rsa ROOT: sshd accepts ed25519 and ECDSA keys only (first value wins: 01- comes
# before every other drop-in).
refuse_rsa() {
  local algorithms=ssh-ed25519,ssh-ed25519-cert-v01@openssh.com
  algorithms+=,sk-ssh-ed25519@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com
  algorithms+=,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521
  algorithms+=,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com
  algorithms+=,ecdsa-sha2-nistp521-cert-v01@openssh.com
  algorithms+=,sk-ecdsa-sha2-nistp256@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com
  printf '%s\n' \
    "# HashiCorp's packer 1.6.6 signs RSA only as ssh-rsa (SHA-1), which OpenSSH 8.8+ refuses:" \
    "# the lab accepts no RSA key at all, so a build leaning on one fails here as in the field." \
    "PubkeyAcceptedAlgorithms $algorithms" >"$root/etc/ssh/sshd_config.d/01-test-host-no-rsa.conf"
}

unpack_pristine() {
  local tmp
  tmp=$(mktemp -d "$cache/unpack.XXXXXX")
  tar --zstd -xpf "$tarball" -C "$tmp"
  mv "$tmp" "$pristine"
}

cmd_rootfs() {
  local want=dir
  while [ $# -gt 0 ]; do
    case $1 in
      --tarball) want=tarball ;;
      --release) set_release "$2"; shift ;;
      *) die "rootfs: unknown option $1" ;;
    esac
    shift
  done
  mkdir -p "$cache"
  # One builder per release at a time: tests running in parallel share the cache.
  exec 9>"$cache/.lock-$release-v$ROOTFS_VERSION"
  flock 9
  [ -f "$tarball" ] || build_tarball
  [ -d "$pristine" ] || unpack_pristine
  exec 9>&-
  if [ "$want" = tarball ]; then echo "$tarball"; else echo "$pristine"; fi
}

# shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
sshd_answers() {
  # The SSH banner, not just an open port: sshd is ready to talk.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && head -c 4 <&3' _ "$1" "$2" 2>/dev/null | grep -q '^SSH-'
}

cmd_boot() {
  local state='' root='' address=127.0.0.1 port=22 keys='' seed='' mode=volatile timeout_s=30
  while [ $# -gt 0 ]; do
    case $1 in
      --state) state=$2; shift ;;
      --root) root=$2; shift ;;
      --release) set_release "$2"; shift ;;
      --address) address=$2; shift ;;
      --port) port=$2; shift ;;
      --authorized-keys) keys=$2; shift ;;
      --seed) seed=$2; shift ;;
      --volatile) mode=volatile ;;
      --persistent) mode=persistent ;;
      --timeout) timeout_s=$2; shift ;;
      *) die "boot: unknown option $1" ;;
    esac
    shift
  done
  [ -n "$state" ] || die "boot: --state DIR is required"
  [[ $address =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "boot: --address must be a loopback IPv4 address (127.x.y.z), not '$address'"
  [[ $port =~ ^[0-9]+$ ]] || die "boot: --port must be a number, not '$port'"
  if [ -z "$root" ]; then
    [ "$mode" = volatile ] || die "boot: --persistent needs --root (a copy of the rootfs, never the pristine one)"
    root=$(cmd_rootfs --release "$release")
  fi
  root=$(realpath "$root")
  [ -x "$root/lib/systemd/systemd" ] || die "boot: $root is not a rootfs with systemd"
  if [ "$mode" = persistent ]; then
    case $root in
      "$(realpath -m "$cache")"/rootfs-*)
        die "boot: refusing to boot the pristine rootfs persistently; copy it first" ;;
    esac
  fi
  mkdir -p "$state"
  state=$(realpath "$state")
  if [ -f "$state/nspawn.pid" ] && kill -0 "$(cat "$state/nspawn.pid")" 2>/dev/null; then
    die "boot: a host from $state is still running; stop it first"
  fi
  if sshd_answers "$address" "$port"; then
    die "boot: something already answers SSH on $address:$port"
  fi
  printf 'ListenAddress %s:%s\n' "$address" "$port" >"$state/sshd-listen.conf"
  chmod 0644 "$state/sshd-listen.conf"

  # read-only: the console's output goes to boot.log. A console nobody reads (passive)
  # fills up, and then cloud-init, which writes to it, blocks.
  local args=(-q -D "$root" --boot --register=no --keep-unit --console=read-only
    "--machine=uwtest-${address//./-}-$port"
    "--bind-ro=$state/sshd-listen.conf:/etc/ssh/sshd_config.d/test-host.conf")
  if [ -n "$keys" ]; then
    install -m 0644 /dev/null "$state/authorized_keys"
    cat "$keys" >"$state/authorized_keys"
    args+=("--bind-ro=$state/authorized_keys:/etc/ssh/test-host-authorized_keys")
  fi
  # Arguments of the container's init: cloud-init reads its PID 1's command line as a
  # kernel command line.
  local init_args=()
  if [ -n "$seed" ]; then
    if [ ! -f "$seed/meta-data" ] || [ ! -f "$seed/user-data" ]; then
      die "boot: --seed $seed must hold meta-data and user-data (a NoCloud seed)"
    fi
    args+=("--bind-ro=$(realpath "$seed"):/var/lib/cloud/seed/nocloud")
  else
    # No seed, no cloud: a test host's first boot is long past (nothing left in its root).
    init_args+=(cloud-init=disabled)
  fi
  [ "$mode" = volatile ] && args+=(--volatile=overlay)
  # setsid: the host outlives this script and is not hit by the caller's terminal signals.
  setsid systemd-nspawn "${args[@]}" "${init_args[@]}" </dev/null >"$state/boot.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$state/nspawn.pid"
  local t0 deadline
  t0=$(date +%s%N)
  deadline=$(($(date +%s) + timeout_s))
  until sshd_answers "$address" "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -20 "$state/boot.log" >&2
      die "boot: systemd-nspawn exited before sshd answered (log: $state/boot.log)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -20 "$state/boot.log" >&2
      cmd_stop --state "$state" --grace 5
      die "boot: sshd did not answer on $address:$port within ${timeout_s}s (log: $state/boot.log)"
    fi
    sleep 0.1
  done
  echo "systemd-host.sh: booted ($mode) $root, sshd on $address:$port after $((($(date +%s%N) - t0) / 1000000)) ms" >&2
}

cmd_stop() {
  local state='' grace=15
  while [ $# -gt 0 ]; do
    case $1 in
      --state) state=$2; shift ;;
      --grace) grace=$2; shift ;;
      *) die "stop: unknown option $1" ;;
    esac
    shift
  done
  [ -n "$state" ] || die "stop: --state DIR is required"
  [ -f "$state/nspawn.pid" ] || return 0
  local pid
  pid=$(cat "$state/nspawn.pid")
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$state/nspawn.pid"
    return 0
  fi
  # The container's init, in case nspawn itself has to be killed: killing a PID
  # namespace's init ends every process in it.
  local inits
  inits=$(pgrep -P "$pid" || true)
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "systemd-host.sh: the host did not power off within ${grace}s; terminating it" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  for p in $inits $pid; do
    kill -KILL "$p" 2>/dev/null || true
  done
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$state/nspawn.pid"
}

[ "$(id -u)" -eq 0 ] || die "run as root (systemd-nspawn and debootstrap need it)"
set_release bookworm
command="${1:-}"
[ $# -gt 0 ] && shift
case $command in
  rootfs) cmd_rootfs "$@" ;;
  boot) cmd_boot "$@" ;;
  stop) cmd_stop "$@" ;;
  *) die "usage: systemd-host.sh rootfs|boot|stop [options] (see the top of this script)" ;;
esac
