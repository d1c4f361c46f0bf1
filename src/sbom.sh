#!/usr/bin/env bash
# The image's bill of materials, taken on the host after provisioning and before
# generalization (uworker-image renders this step for `[[provision]] sbom = true` and
# brings the file back with packer's file provisioner, `direction = "download"`).
# Writes CycloneDX 1.5 JSON to UWORKER_SBOM_FILE (mode 0600, in the run's private upload
# directory):
# - every OS package dpkg knows as installed: name, version, architecture, source
#   package (purl pkg:deb/<distro>/<name>@<version>?arch=<arch>&distro=<distro>-<version>);
# - every distribution in the worker's venv (/opt/uworker/venv) with its version
#   (pkg:pypi/<name>@<version>);
# - the kernel: the running one (uname -r) and the newest installed linux-image;
# - the worker itself (the distribution with the `uworker` console script) with its pinned
#   commit (pip's direct_url.json of a git install) or hash (an archive's, or the digest
#   35-worker.sh stamped for an uploaded directory or file).
# Reads only what the host has (bash, python3's standard library, dpkg-query) and never
# /etc/uworker (the worker's config holds its secrets); a URL's userinfo is dropped.
# Runs as the SSH user: nothing here needs root.
set -euo pipefail

: "${UWORKER_SBOM_FILE:?UWORKER_SBOM_FILE must name the file to write}"
out=$UWORKER_SBOM_FILE
venv=${UWORKER_SBOM_VENV:-/opt/uworker/venv}
stamp=${UWORKER_SBOM_STAMP:-/opt/uworker/installed-source}

umask 077
packages=$(mktemp)
trap 'rm -f "$packages"' EXIT
if command -v dpkg-query >/dev/null 2>&1; then
  # Installed packages only (not those removed with their config files left).
  dpkg-query -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n' >"$packages"
fi

distributions=''
if [ -x "$venv/bin/python" ]; then
  # The venv's own interpreter sees exactly the venv's distributions.
  distributions=$("$venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import json

found = []
for dist in metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    worker = any(
        e.group == "console_scripts" and e.name == "uworker" for e in dist.entry_points
    )
    direct_url = None
    try:
        text = dist.read_text("direct_url.json")
        direct_url = json.loads(text) if text else None
    except (OSError, ValueError):
        direct_url = None
    found.append(
        {"name": name, "version": dist.version, "worker": worker, "direct_url": direct_url}
    )
print(json.dumps(found))
PY
  )
fi

python3 - "$out" "$packages" "$stamp" "$distributions" <<'PY'
import datetime
import json
import os
import platform
import re
import sys
import urllib.parse
import uuid

out, packages_file, stamp_file, distributions = sys.argv[1:5]
KIND = "uworker-image:kind"


def quote(text):
    return urllib.parse.quote(text, safe=".-_~")


def without_userinfo(text):
    """Every URL in `text` without its `user:password@`: the SBOM is published."""
    return re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@", r"\1", text)


def os_release():
    fields = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    key, _, value = line.strip().partition("=")
                    if key:
                        fields[key] = value.strip().strip('"').strip("'")
            break
        except OSError:
            continue
    return fields


def prop(name, value):
    return {"name": name, "value": value}


release = os_release()
distro = release.get("ID", "linux")
distro_version = release.get("VERSION_ID", "")
distro_qualifier = f"{distro}-{distro_version}" if distro_version else distro
components = []
refs = set()


def add(component):
    # bom-refs are unique in a document.
    ref = component.get("purl") or f"{component['type']}/{component['name']}"
    while ref in refs:
        ref += "+"
    refs.add(ref)
    component["bom-ref"] = ref
    components.append(component)


kernels = []
with open(packages_file, encoding="utf-8", errors="replace") as f:
    for line in f:
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 6:
            continue
        status, name, version, arch, source, source_version = fields
        if not status.startswith("ii"):
            continue
        purl = (
            f"pkg:deb/{quote(distro)}/{quote(name)}@{quote(version)}"
            f"?arch={quote(arch)}&distro={quote(distro_qualifier)}"
        )
        properties = [prop(KIND, "deb"), prop("uworker-image:deb:architecture", arch)]
        if source:
            properties.append(prop("uworker-image:deb:source", source))
        if source_version and source_version != version:
            properties.append(prop("uworker-image:deb:source-version", source_version))
        add(
            {
                "type": "library",
                "name": name,
                "version": version,
                "purl": purl,
                "properties": properties,
            }
        )
        if re.match(r"linux-image-\d", name):
            kernels.append((name[len("linux-image-") :], version))

# The kernel: the one running now, and the newest an installed linux-image package holds
# (the one the image boots, where the host is a machine of its own).
add(
    {
        "type": "operating-system",
        "name": "running kernel",
        "version": platform.release(),
        "properties": [prop(KIND, "kernel")],
    }
)
if kernels:
    newest = max(kernels, key=lambda k: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", k[0])])
    add(
        {
            "type": "operating-system",
            "name": "installed kernel",
            "version": newest[0],
            "properties": [
                prop(KIND, "kernel"),
                prop("uworker-image:kernel:package", f"linux-image-{newest[0]}"),
                prop("uworker-image:kernel:package-version", newest[1]),
            ],
        }
    )

try:
    with open(stamp_file, encoding="utf-8") as f:
        stamp = f.read().strip()
except OSError:
    stamp = ""

for dist in json.loads(distributions) if distributions else []:
    name = re.sub(r"[-_.]+", "-", dist["name"]).lower()
    purl = f"pkg:pypi/{quote(name)}@{quote(dist['version'])}"
    component = {
        "type": "library",
        "name": name,
        "version": dist["version"],
        "purl": purl,
        "properties": [prop(KIND, "pypi")],
    }
    if dist["worker"]:
        # The worker with what pins it: a git install's commit, an archive's hash, or the
        # digest of the uploaded source 35-worker.sh stamped.
        component["type"] = "application"
        component["properties"] = [prop(KIND, "worker")]
        direct = dist.get("direct_url") or {}
        url = without_userinfo(direct.get("url", ""))
        vcs = direct.get("vcs_info") or {}
        archive = direct.get("archive_info") or {}
        pin = ""
        if vcs.get("commit_id"):
            pin = vcs["commit_id"]
            component["properties"].append(prop("uworker-image:worker:commit", pin))
            component["externalReferences"] = [
                {"type": "vcs", "url": f"{vcs.get('vcs', 'git')}+{url}@{pin}"}
            ]
        elif archive.get("hashes", {}).get("sha256") or archive.get("hash"):
            digest = archive.get("hashes", {}).get("sha256") or archive["hash"].partition("=")[2]
            pin = f"sha256:{digest}"
            component["hashes"] = [{"alg": "SHA-256", "content": digest}]
        elif stamp.startswith(("directory ", "file ")):
            digest = stamp.split()[-1]
            pin = f"sha256:{digest}"
            component["hashes"] = [{"alg": "SHA-256", "content": digest}]
        if pin:
            component["properties"].append(prop("uworker-image:worker:pin", pin))
        if url:
            component["properties"].append(prop("uworker-image:worker:url", url))
        if stamp:
            component["properties"].append(
                prop("uworker-image:worker:installed-source", without_userinfo(stamp))
            )
    add(component)

document = {
    "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "serialNumber": f"urn:uuid:{uuid.uuid4()}",
    "version": 1,
    "metadata": {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tools": {"components": [{"type": "application", "name": "uworker-image"}]},
        "component": {
            "type": "operating-system",
            "bom-ref": "image",
            "name": distro,
            "version": distro_version or "unknown",
            "description": release.get("PRETTY_NAME", distro),
        },
    },
    "components": components,
}
fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(document, f, indent=1, sort_keys=True)
    f.write("\n")
counts = {}
for c in components:
    kind = next(p["value"] for p in c["properties"] if p["name"] == KIND)
    counts[kind] = counts.get(kind, 0) + 1
print("sbom.sh: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
PY
