"""Servers as real hosts: a copy of a cached root filesystem (Debian 12 or 13, the
systems the harness can build here, as the image says) booted with systemd under systemd-nspawn by
tests/harness/systemd-host.sh, sshd on its own loopback address, the key pair's public key
authorized as a cloud's first boot would. Every host lives in a directory of its own under
the stand-in's state directory."""

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

    def boot(self, server_id, release, address, public_keys):
        """Copies the release's rootfs and boots it persistently (so it can be
        snapshotted)."""
        pristine = self.pristine(release)
        base, root, state = self.paths(server_id)
        os.makedirs(base, exist_ok=True)
        if not os.path.isdir(root):
            subprocess.run(["cp", "-a", "--reflink=auto", pristine, root], check=True)
            _authorize_as_cloud_init(root, public_keys)
        keys = os.path.join(base, "authorized_keys")
        with open(keys, "w") as f:
            f.write("".join(k.strip() + "\n" for k in public_keys))
        self._run("boot", "--state", state, "--root", root, "--address", address,
                  "--port", "22", "--authorized-keys", keys, "--persistent", "--timeout", "60")

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


# cloud-init's default user on the images this stands in for, and what it puts before the
# key in root's authorized_keys (disable_root).
DEFAULT_USER = "ubuntu"
ROOT_KEY_OPTIONS = ('no-port-forwarding,no-agent-forwarding,no-X11-forwarding,'
                    f'command="echo \'Please login as the user \\"{DEFAULT_USER}\\" rather than '
                    'the user \\"root\\".\';echo;sleep 10;exit 142" ')


def _authorize_as_cloud_init(root, public_keys):
    """The key pair's keys in the default user's and root's ~/.ssh/authorized_keys of a new
    server's root, as cloud-init's first boot writes them: they are in the server's disk,
    so in a snapshot of it unless provisioning removes them."""
    if not public_keys:
        return
    users = {}
    with open(os.path.join(root, "etc/passwd")) as f:
        for line in f:
            fields = line.rstrip("\n").split(":")
            users[fields[0]] = (int(fields[2]), int(fields[3]), fields[5])
    for user, prefix in ((DEFAULT_USER, ""), ("root", ROOT_KEY_OPTIONS)):
        uid, gid, home = users[user]
        ssh_dir = os.path.join(root, home.lstrip("/"), ".ssh")
        os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
        path = os.path.join(ssh_dir, "authorized_keys")
        with open(path, "w") as f:
            f.write("".join(prefix + k.strip() + "\n" for k in public_keys))
        os.chmod(path, 0o600)
        for p in (ssh_dir, path):
            os.chown(p, uid, gid)


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
