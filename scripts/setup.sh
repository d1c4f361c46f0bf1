#!/usr/bin/env bash
# Installs what uworker-image and its tests run: Debian's packer, shellcheck and
# openssh-server (a private sshd is the test host of `test` mode), pinned.
# Installs only what is missing; runs `apt-get update` once, before the install.
set -euo pipefail

packages=()
command -v packer >/dev/null 2>&1 || packages+=("packer=1.6.6*")
command -v shellcheck >/dev/null 2>&1 || packages+=("shellcheck=0.9.0*")
[ -x /usr/sbin/sshd ] || packages+=("openssh-server=1:9.2p1*")
# ssh: `build` checks the image it verifies over the OpenSSH client (src/verify/ssh.rs).
command -v ssh >/dev/null 2>&1 || packages+=("openssh-client=1:9.2p1*")
# The booted systemd test host (tests/harness/systemd-host.sh): debootstrap builds its
# root filesystem once (cached as a zstd tarball), systemd-nspawn boots it.
command -v debootstrap >/dev/null 2>&1 || packages+=("debootstrap=1.0.128+nmu2+deb12u2*")
command -v systemd-nspawn >/dev/null 2>&1 || packages+=("systemd-container=252.39-1~deb12u2*")
command -v zstd >/dev/null 2>&1 || packages+=("zstd=1.5.4*")
# node and npm run Prism, the GitHub API conformance check (tests/harness/github).
command -v node >/dev/null 2>&1 || packages+=("nodejs=18.20.4*")
command -v npm >/dev/null 2>&1 || packages+=("npm=9.2.0*")
# Venvs for the test harnesses (actionlint, Keystone + Glance); curl for action/install.sh.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || packages+=("python3-venv=3.11.2*")
command -v curl >/dev/null 2>&1 || packages+=("curl=7.88.1*")
# git: the loopback git server (git http-backend) of the pin tests (tests/services/pin_git.rs),
# and what resolves a git worker_source to its commit (git ls-remote, 2.31+).
command -v git >/dev/null 2>&1 || packages+=("git=1:2.39.5*")
# tmux: a real terminal for the --openrc password prompt tests (tests/services/openrc.rs).
command -v tmux >/dev/null 2>&1 || packages+=("tmux=3.3a-3*")

if [ "${#packages[@]}" -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "setup: installing ${packages[*]}" >&2
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
