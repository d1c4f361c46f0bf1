"""Servers as real hosts: a copy of a cached root filesystem (Debian 12 or 13, the
systems the harness can build here, as the image says), or a snapshot's own root, booted
with systemd under systemd-nspawn by tests/harness/systemd-host.sh, sshd on its own loopback
address. The host's cloud-init takes the key pair, hostname and user data from the NoCloud
seed the stand-in binds in (seed.py), as a cloud's first boot does: nothing else authorizes
a key. Every host lives in a directory of its own under the stand-in's state directory."""

# Glance's standard os_distro/os_version image properties -> the harness's releases.
RELEASES = {("debian", "12"): "bookworm", ("debian", "13"): "trixie"}


def release_of(image):
    """The root filesystem an image boots: by its os_distro and os_version (Debian 12 when
    it names none); None for a system the harness has no root filesystem of."""
    distro, version = image.get("os_distro"), image.get("os_version")
    if distro is None and version is None:
        return "bookworm"
    return RELEASES.get((str(distro).lower(), str(version)))

import os
import shutil
import socket
import subprocess
import threading


class HostError(Exception):
    pass


class Hosts:
    def __init__(self, script, state_dir, addresses):
        self.script = script
        self.dir = os.path.join(state_dir, "hosts")
        os.makedirs(self.dir, exist_ok=True)
        self._addresses = addresses
        self._taken = set()
        self._lock = threading.Lock()
        self._pristine = {}

    def clean_leftovers(self):
        """Hosts a stand-in that died left behind: powered off and removed."""
        for server_id in os.listdir(self.dir):
            self.remove(server_id)

    def _run(self, *args, timeout=300):
        done = subprocess.run([self.script, *args], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise HostError(f"systemd-host.sh {args[0]}: {done.stderr.strip()[-2000:]}")
        return done.stdout.strip()

    def pristine(self, release):
        """The release's cached rootfs (built by the harness once, 1-3 minutes)."""
        with self._lock:
            if release not in self._pristine:
                self._pristine[release] = self._run("rootfs", "--release", release, timeout=900)
            return self._pristine[release]

    def allocate(self):
        """The lowest free address of the pool: not ours, and nothing answers on :22."""
        with self._lock:
            for address in self._addresses:
                if address not in self._taken and not _listening(address, 22):
                    self._taken.add(address)
                    return address
        raise HostError("no free address left in the pool")

    def release(self, address):
        with self._lock:
            self._taken.discard(address)

    def paths(self, server_id):
        base = os.path.join(self.dir, server_id)
        return base, os.path.join(base, "root"), os.path.join(base, "state")

    def boot(self, server_id, address, seed_writer, release=None, tarball=None):
        """Boots the server persistently (so it can be snapshotted): its root is a copy of
        the release's rootfs, or the root in `tarball` (a snapshot's data); the seed is what
        `seed_writer(directory)` writes."""
        base, root, state = self.paths(server_id)
        os.makedirs(base, exist_ok=True)
        if not os.path.isdir(root):
            if tarball is not None:
                shutil.rmtree(root + ".new", ignore_errors=True)
                os.makedirs(root + ".new")
                subprocess.run(["tar", "-I", "zstd", "--numeric-owner", "-xpf", tarball,
                                "-C", root + ".new"], check=True, capture_output=True)
                os.rename(root + ".new", root)
            else:
                subprocess.run(["cp", "-a", "--reflink=auto", self.pristine(release), root],
                               check=True)
        seed_dir = os.path.join(base, "nocloud")
        seed_writer(seed_dir)
        self._run("boot", "--state", state, "--root", root, "--address", address,
                  "--port", "22", "--seed", seed_dir, "--persistent", "--timeout", "60")

    def power_off(self, server_id, grace):
        """A clean poweroff (grace > 0) or an immediate one (0), as stop and delete do."""
        _, _, state = self.paths(server_id)
        if os.path.isdir(state):
            self._run("stop", "--state", state, "--grace", str(grace), timeout=grace + 60)

    def remove(self, server_id):
        self.power_off(server_id, 0)
        shutil.rmtree(self.paths(server_id)[0], ignore_errors=True)

    def tarball(self, server_id, path):
        """The root filesystem as a zstd tarball (the host must be off)."""
        _, root, _ = self.paths(server_id)
        subprocess.run(["tar", "-I", "zstd -T0 -3", "--numeric-owner", "-cpf", path,
                        "-C", root, "."], check=True, capture_output=True)

    def running(self):
        """Hosts whose systemd-nspawn is still alive: what a test must find empty."""
        alive = []
        for server_id in sorted(os.listdir(self.dir)):
            pid_file = os.path.join(self.paths(server_id)[2], "nspawn.pid")
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                os.kill(pid, 0)
            except (OSError, ValueError):
                continue
            alive.append({"server": server_id, "pid": pid})
        return alive


def _listening(address, port):
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((address, port)) == 0


def address_pool(spec):
    """'127.0.3.10-127.0.3.99' -> the addresses in that range (same /24)."""
    first, last = spec.split("-")
    prefix, start = first.rsplit(".", 1)
    last_prefix, end = last.rsplit(".", 1)
    if prefix != last_prefix or not prefix.startswith("127."):
        raise ValueError(f"--addresses must be a loopback range in one /24, not {spec}")
    return [f"{prefix}.{n}" for n in range(int(start), int(end) + 1)]
