"""What Nova tells a new server's cloud-init, as a NoCloud seed: the instance-id (the server
ID), the hostname (the server's name as Nova sanitizes it, or the 2.90+ `hostname`), the key
pair's public key and the create body's user_data. The host binds the seed read-only where
cloud-init looks for one (/var/lib/cloud/seed/nocloud): like a config drive it is no part
of the server's disk, so no snapshot holds it."""

import base64
import json
import os

from nova import utils


def hostname(server_id, name, requested=None):
    """The instance's hostname, as Nova's compute API sets it on create."""
    if requested:
        return requested
    return utils.sanitize_hostname(name) or f"Server-{server_id}"


def write(directory, server_id, host_name, public_keys, user_data):
    """The seed's meta-data and user-data in `directory` (created, root only: user_data
    may carry secrets). `user_data` is the create body's base64 text, or None."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    meta = {"instance-id": server_id, "local-hostname": host_name,
            "public-keys": [k.strip() for k in public_keys]}
    # JSON is YAML: no quoting question for any key comment or hostname.
    _write(os.path.join(directory, "meta-data"), json.dumps(meta, indent=1).encode() + b"\n")
    data = base64.b64decode(user_data) if user_data else b""
    _write(os.path.join(directory, "user-data"), data)


def _write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
