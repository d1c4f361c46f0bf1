"""What the stand-in does for each Nova operation packer's openstack builder and the tool
call: flavors, key pairs (create, show, list, delete), servers (create, show, list
with details, delete, os-stop, createImage, interfaces, metadata), kept in memory. Answers
are shaped for the request's microversion; the HTTP layer checks them against Nova's
schemas. Slow work (boot, poweroff, snapshot, delete) runs in the background, as in Nova:
the caller polls the server's status and task_state."""

import datetime
import hashlib
import os
import secrets
import subprocess
import tempfile
import threading
import time
import uuid

from nova.api.openstack import api_version_request

from . import seed
from .api import Api, ApiError
from .hosts import HostError, release_of
from .network import PRIVATE_NETWORK_ID, PRIVATE_SUBNET_ID
from .openstack import Glance

# (id, name, ram MiB, vcpus, disk GiB): a small public flavor list.
FLAVORS = [("1", "c1.small", 2048, 1, 20), ("2", "m1.small", 2048, 1, 20),
           ("3", "m1.large", 8192, 4, 80)]
NETWORK = "private"
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
# How much longer a snapshot takes under the slow_snapshot fault.
SLOW_SNAPSHOT_SECONDS = 15

# Nova's default quota of metadata items per server.
METADATA_ITEMS = 128


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _at_least(version, text):
    return version >= api_version_request.APIVersionRequest(text)


class Faults:
    """Failures injected on request: HTTP 500 for the next N server creates, ERROR for
    the next N servers that would boot, HTTP 500 for the next N server lists; the next N
    snapshots spend SLOW_SNAPSHOT_SECONDS more in image_uploading (a cloud's save, which
    takes hours, in small)."""

    def __init__(self):
        self.create_500 = 0
        self.boot_error = 0
        self.list_500 = 0
        self.slow_snapshot = 0

    def take(self, name):
        left = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False


class Server:
    def __init__(self, caller, body, flavor, key, image, release):
        self.id = str(uuid.uuid4())
        self.project_id = caller.project_id
        self.user_id = caller.user_id
        self.name = body["name"]
        self.image_id = image["id"]
        # A snapshot boots its own root (its data); a base image the cached root
        # filesystem of its release.
        self.snapshot = image.get("image_type") == "snapshot"
        self.release = release
        self.hostname = seed.hostname(self.id, self.name, body.get("hostname"))
        self.user_data = body.get("user_data")
        self.flavor_id = flavor[0]
        self.key_name = key["name"] if key else None
        self.public_keys = [key["public_key"]] if key else []
        self.metadata = dict(body.get("metadata", {}))
        self.security_groups = [g["name"] for g in body.get("security_groups", [])] or ["default"]
        self.availability_zone = body.get("availability_zone") or "nova"
        self.config_drive = "True" if body.get("config_drive") else ""
        self.created = self.updated = _now()
        self.launched = None
        self.vm_state, self.task_state, self.power_state = "building", "scheduling", 0
        self.address = None
        self.port_id = str(uuid.uuid4())
        self.fault = None
        self.worker = None  # the background thread of the current task

    @property
    def status(self):
        if self.vm_state == "error":
            return "ERROR"
        return {"building": "BUILD", "active": "ACTIVE", "stopped": "SHUTOFF"}[self.vm_state]

    def set(self, **changes):
        for key, value in changes.items():
            setattr(self, key, value)
        self.updated = _now()


def _earlier(stamp, delta):
    """An RFC 3339 UTC moment `delta` earlier; None when `stamp` is not one."""
    try:
        moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return (moment - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref_id(ref):
    """An image or flavor reference is an ID or a URL ending in one."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


class Compute:
    def __init__(self, hosts, base_url, log):
        self.hosts = hosts
        self.base_url = base_url
        self.log = log
        self.faults = Faults()
        self.servers = {}
        self.keypairs = {}  # (user_id, name) -> keypair
        self.public_keys = []  # of every key pair created since the reset, deleted or not
        self.created = []  # every server created since the reset: id, name, hostname
        self.errors = []  # background failures the stand-in itself hit
        self.network = None  # the Network, for the ports of deleted servers
        self.lock = threading.RLock()
        self.handlers = {
            "Versions.index": self.versions,
            "VersionsController.show": self.version,
            "FlavorsController.index": self.flavor_list,
            "FlavorsController.detail": self.flavor_list,
            "FlavorsController.show": self.flavor_show,
            "KeypairController.create": self.keypair_create,
            "KeypairController.show": self.keypair_show,
            "KeypairController.delete": self.keypair_delete,
            "KeypairController.index": self.keypair_list,
            "ServersController.create": self.server_create,
            "ServersController.show": self.server_show,
            "ServersController.detail": self.server_list_detail,
            "ServersController.delete": self.server_delete,
            "ServersController._stop": self.server_stop,
            "ServersController._create_image": self.server_create_image,
            "InterfaceAttachmentController.index": self.server_interfaces,
            "ServerMetadataController.index": self.metadata_index,
            "ServerMetadataController.show": self.metadata_show,
            "ServerMetadataController.create": self.metadata_create,
            "ServerMetadataController.update": self.metadata_update,
            "ServerMetadataController.update_all": self.metadata_update_all,
            "ServerMetadataController.delete": self.metadata_delete,
        }

    # Each handler takes (call) and returns (status, body, headers).

    def versions(self, call):
        return 200, Api.versions_document(self.base_url), {}

    def version(self, call):
        return 200, Api.version_document(self.base_url + "/v2.1/"), {}

    # -- flavors ---------------------------------------------------------------------

    def _flavor_view(self, flavor, detail, version):
        fid, name, ram, vcpus, disk = flavor
        view = {"id": fid, "name": name, "links": self._links("flavors", fid)}
        if _at_least(version, "2.55"):
            view["description"] = None
        if detail:
            # Nova shows no swap as "" until 2.75, as 0 since.
            swap = 0 if _at_least(version, "2.75") else ""
            view.update({"ram": ram, "vcpus": vcpus, "disk": disk, "swap": swap,
                         "rxtx_factor": 1.0, "os-flavor-access:is_public": True,
                         "OS-FLV-EXT-DATA:ephemeral": 0, "OS-FLV-DISABLED:disabled": False})
            if _at_least(version, "2.61"):
                view["extra_specs"] = {}
        return view

    def flavor_list(self, call):
        detail = call.operation.name.endswith("detail")
        marker = call.query.get("marker", [None])[0]
        flavors = FLAVORS
        if marker:
            ids = [f[0] for f in FLAVORS]
            if marker not in ids:
                raise ApiError(400, f"marker [{marker}] not found")
            flavors = FLAVORS[ids.index(marker) + 1:]
        if "limit" in call.query:
            flavors = flavors[:int(call.query["limit"][0])]
        return 200, {"flavors": [self._flavor_view(f, detail, call.version) for f in flavors]}, {}

    def flavor_show(self, call):
        flavor = self._flavor(call.operation.params["id"])
        return 200, {"flavor": self._flavor_view(flavor, True, call.version)}, {}

    @staticmethod
    def _flavor(ref):
        for flavor in FLAVORS:
            if flavor[0] == _ref_id(ref):
                return flavor
        raise ApiError(404, f"Flavor {ref} could not be found.")

    # -- key pairs -------------------------------------------------------------------

    def keypair_create(self, call):
        body = call.body["keypair"]
        name = body["name"]
        with self.lock:
            if (call.caller.user_id, name) in self.keypairs:
                raise ApiError(409, f"Key pair '{name}' already exists.")
            private_key = None
            public_key = body.get("public_key")
            if public_key is None:
                private_key, public_key = _generate_key()
            keypair = {"name": name, "public_key": public_key.strip(),
                       "fingerprint": _fingerprint(public_key),
                       "user_id": call.caller.user_id, "type": body.get("type", "ssh"),
                       "created_at": _now()}
            self.keypairs[(call.caller.user_id, name)] = keypair
            self.public_keys.append(keypair["public_key"])
        view = self._keypair_view(keypair, call.version)
        if private_key:
            view["private_key"] = private_key
        return (201 if _at_least(call.version, "2.2") else 200), {"keypair": view}, {}

    @staticmethod
    def _keypair_view(keypair, version):
        view = {k: keypair[k] for k in ("name", "public_key", "fingerprint", "user_id")}
        if _at_least(version, "2.2"):
            view["type"] = keypair["type"]
        return view

    def _keypair(self, call):
        key = (call.caller.user_id, call.operation.params["id"])
        keypair = self.keypairs.get(key)
        if keypair is None:
            raise ApiError(404, f"Keypair {key[1]} not found for user {key[0]}")
        return key, keypair

    def keypair_show(self, call):
        with self.lock:
            _, keypair = self._keypair(call)
            view = self._keypair_view(keypair, call.version)
        view.update({"id": 1, "deleted": False, "deleted_at": None, "updated_at": None,
                     "created_at": keypair["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%f")})
        return 200, {"keypair": view}, {}

    def keypair_list(self, call):
        """The caller's key pairs, by name (Nova's order); limit/marker from 2.35."""
        _only_paging(call.query, "os-keypairs")
        with self.lock:
            mine = sorted((k for (user, _), k in self.keypairs.items()
                           if user == call.caller.user_id), key=lambda k: k["name"])
        mine = _page(mine, call.query, lambda k: k["name"], "keypair")
        return 200, {"keypairs": [{"keypair": _without(self._keypair_view(k, call.version),
                                                       "user_id")} for k in mine]}, {}

    def keypair_delete(self, call):
        with self.lock:
            key, _ = self._keypair(call)
            del self.keypairs[key]
        return (204 if _at_least(call.version, "2.2") else 202), None, {}

    # -- servers ---------------------------------------------------------------------

    def _links(self, collection, item_id):
        return [{"rel": "self", "href": f"{self.base_url}/v2.1/{collection}/{item_id}"},
                {"rel": "bookmark", "href": f"{self.base_url}/{collection}/{item_id}"}]

    def _server(self, call):
        server = self.servers.get(call.operation.params["id"])
        if server is None or server.project_id != call.caller.project_id:
            raise ApiError(404, f"Instance {call.operation.params['id']} could not be found.")
        return server

    def server_create(self, call):
        body = call.body["server"]
        if self.faults.take("create_500"):
            raise ApiError(500, "Unexpected API Error. Please report this at "
                                "http://bugs.launchpad.net/nova/ and attach the Nova API log "
                                "if possible.\n<class 'nova.exception.InjectedFault'>")
        try:
            flavor = self._flavor(body["flavorRef"])
        except ApiError:
            raise ApiError(400, f"Flavor {body['flavorRef']} could not be found.")
        if not body.get("imageRef"):
            raise ApiError(400, "Block Device Mapping is Invalid: Boot sequence for the "
                                "instance and image/block device mapping combination is not valid.")
        image = Glance(call.caller, call.token).get(_ref_id(body["imageRef"]))
        if image is None:
            raise ApiError(400, f"Image {body['imageRef']} could not be found.")
        if image["status"] != "active":
            raise ApiError(400, f"Image {image['id']} is not active.")
        release = release_of(image)
        if release is None and image.get("image_type") != "snapshot":
            raise ApiError(400, f"Image {image['id']} is {image.get('os_distro')} "
                                f"{image.get('os_version')}: the stand-in has no such system")
        key = None
        if body.get("key_name"):
            key = self.keypairs.get((call.caller.user_id, body["key_name"]))
            if key is None:
                raise ApiError(400, "Invalid key_name provided.")
        server = Server(call.caller, body, flavor, key, image, release)
        fail = self.faults.take("boot_error")
        with self.lock:
            self.servers[server.id] = server
            self.created.append({"id": server.id, "name": server.name,
                                 "hostname": server.hostname})
        self._background(server, self._boot, fail, Glance(call.caller, call.token))
        view = {"id": server.id, "links": self._links("servers", server.id),
                "OS-DCF:diskConfig": "MANUAL", "adminPass": secrets.token_urlsafe(9),
                "security_groups": [{"name": n} for n in server.security_groups]}
        return 202, {"server": view}, {"Location": f"{self.base_url}/v2.1/servers/{server.id}"}

    def _background(self, server, task, *args):
        def run():
            try:
                task(server, *args)
            except Exception as error:
                with self.lock:
                    if server.task_state == "deleting":
                        # A boot or snapshot cut short by a delete: expected.
                        self.log(f"{task.__name__} {server.id} ended by delete: {error}")
                        return
                    server.set(vm_state="error", task_state=None, fault=self._fault(str(error)))
                # Reported: a test must not pass over the stand-in's own failures.
                self.errors.append(f"{task.__name__} {server.id}: {error}")
                self.log(f"ERROR {task.__name__} {server.id}: {error}")

        thread = threading.Thread(target=run, daemon=True, name=f"{task.__name__}-{server.id}")
        server.worker = thread
        thread.start()

    @staticmethod
    def _fault(message):
        return {"code": 500, "created": _stamp(_now()), "message": message}

    def _boot(self, server, fail, glance):
        if fail:
            server.set(vm_state="error", task_state=None, fault=self._fault(NO_VALID_HOST))
            return
        server.set(task_state="networking")
        address = self.hosts.allocate()
        server.set(address=address, task_state="spawning")
        disk = f"snapshot {server.image_id}" if server.snapshot else server.release
        self.log(f"booting server {server.id} ({server.name}, {disk}) on {address}")

        def write_seed(directory):
            seed.write(directory, server.id, server.hostname, server.public_keys,
                       server.user_data)

        if not server.snapshot:
            self.hosts.boot(server.id, address, write_seed, release=server.release)
            return self._booted(server)
        with tempfile.TemporaryDirectory(dir=self.hosts.dir) as work:
            data = os.path.join(work, "root.tar.zst")
            glance.download(server.image_id, data)
            self.hosts.boot(server.id, address, write_seed, tarball=data)
        self._booted(server)

    def _booted(self, server):
        with self.lock:
            if server.task_state == "spawning":
                server.set(vm_state="active", task_state=None, power_state=1, launched=_now())

    def server_show(self, call):
        with self.lock:
            server = self._server(call)
            return 200, {"server": self._server_view(server, call.version)}, {}

    def server_list_detail(self, call):
        """The project's servers with details, newest first (Nova's default sort), paged
        by limit/marker with a `next` link when a page is full."""
        _only_paging(call.query, "servers/detail")
        if self.faults.take("list_500"):
            raise ApiError(500, "Unexpected API Error. Please report this at "
                                "http://bugs.launchpad.net/nova/ and attach the Nova API log "
                                "if possible.\n<class 'nova.exception.InjectedFault'>")
        with self.lock:
            mine = sorted((s for s in self.servers.values()
                           if s.project_id == call.caller.project_id),
                          key=lambda s: (s.created, s.id), reverse=True)
            page = _page(mine, call.query, lambda s: s.id, "server")
            body = {"servers": [self._server_view(s, call.version) for s in page]}
        limit = call.query.get("limit", [None])[0]
        if limit is not None and page and len(page) == int(limit):
            body["servers_links"] = [{"rel": "next", "href": (
                f"{self.base_url}/v2.1/servers/detail?limit={limit}&marker={page[-1].id}")}]
        return 200, body, {}

    def age(self, seconds):
        """Test control: every server and key pair made `seconds` earlier (a run that died
        hours ago, without waiting hours). A key pair's name, which carries its run's
        deadline, cannot be aged: a test ages the server that uses it."""
        delta = datetime.timedelta(seconds=seconds)
        with self.lock:
            for server in self.servers.values():
                server.created -= delta
                # The run's deadline and lease marks are moments too (RFC 3339, UTC).
                for key in ("uworker_deadline", "uworker_alive_until"):
                    if key in server.metadata:
                        earlier = _earlier(server.metadata[key], delta)
                        if earlier is None:
                            # A mark the test cannot age: its test would check less
                            # than it seems to. Reported, so the scenario fails.
                            self.errors.append(f"age: {key} of server {server.id} is no "
                                               f"RFC 3339 UTC moment: {server.metadata[key]!r}")
                        else:
                            server.metadata[key] = earlier
            for keypair in self.keypairs.values():
                keypair["created_at"] -= delta

    def _server_view(self, s, version):
        view = {
            "id": s.id, "name": s.name, "status": s.status, "tenant_id": s.project_id,
            "user_id": s.user_id, "metadata": s.metadata,
            "hostId": hashlib.sha224((s.project_id + "standin").encode()).hexdigest()
            if s.address else "",
            "image": {"id": s.image_id, "links": [
                {"rel": "bookmark", "href": f"{self.base_url}/images/{s.image_id}"}]},
            "flavor": {"id": s.flavor_id, "links": [
                {"rel": "bookmark", "href": f"{self.base_url}/flavors/{s.flavor_id}"}]},
            "created": _stamp(s.created), "updated": _stamp(s.updated),
            "addresses": {NETWORK: [{
                "version": 4, "addr": s.address, "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": _mac(s.id)}]} if s.address else {},
            "accessIPv4": "", "accessIPv6": "",
            "links": self._links("servers", s.id),
            "key_name": s.key_name, "config_drive": s.config_drive,
            "os-extended-volumes:volumes_attached": [],
            "security_groups": [{"name": n} for n in s.security_groups],
            "OS-DCF:diskConfig": "MANUAL",
            "OS-EXT-AZ:availability_zone": s.availability_zone,
            "OS-EXT-STS:power_state": s.power_state,
            "OS-EXT-STS:task_state": s.task_state,
            "OS-EXT-STS:vm_state": s.vm_state,
            "OS-SRV-USG:launched_at": s.launched.strftime("%Y-%m-%dT%H:%M:%S.%f")
            if s.launched else None,
            "OS-SRV-USG:terminated_at": None,
        }
        if s.status in ("BUILD", "ACTIVE"):
            view["progress"] = 0
        if s.fault:
            view["fault"] = s.fault
        if _at_least(version, "2.9"):
            view["locked"] = False
        return view

    def server_by_port(self, port_id):
        with self.lock:
            for server in self.servers.values():
                if server.port_id == port_id and server.task_state != "deleting":
                    return server
        return None

    def server_interfaces(self, call):
        """The server's one port on the private network (packer finds the port to give
        the floating IP here)."""
        server_id = call.operation.params["server_id"]
        with self.lock:
            server = self.servers.get(server_id)
            if server is None or server.project_id != call.caller.project_id:
                raise ApiError(404, f"Instance {server_id} could not be found.")
            ports = [] if not server.address else [{
                "port_state": "ACTIVE", "port_id": server.port_id, "net_id": PRIVATE_NETWORK_ID,
                "mac_addr": _mac(server.id),
                "fixed_ips": [{"subnet_id": PRIVATE_SUBNET_ID, "ip_address": server.address}]}]
        return 200, {"interfaceAttachments": ports}, {}

    # -- server metadata ---------------------------------------------------------------

    def _metadata_server(self, call, action=None):
        """The caller's server; for a change (`action`), one Nova lets change: active or
        stopped, no task running (Nova's check_instance_state)."""
        server_id = call.operation.params["server_id"]
        server = self.servers.get(server_id)
        if server is None or server.project_id != call.caller.project_id:
            raise ApiError(404, f"Instance {server_id} could not be found.")
        if action is not None:
            for attr, state, allowed in (("vm_state", server.vm_state, ("active", "stopped")),
                                         ("task_state", server.task_state, (None,))):
                if state not in allowed:
                    raise ApiError(409, f"Cannot '{action}' instance {server_id} while it is "
                                        f"in {attr} {state}")
        return server

    def _set_metadata(self, server, metadata):
        if len(metadata) > METADATA_ITEMS:
            raise ApiError(403, f"Maximum number of metadata items exceeds {METADATA_ITEMS}")
        server.set(metadata=metadata)
        return dict(metadata)

    def metadata_index(self, call):
        with self.lock:
            return 200, {"metadata": dict(self._metadata_server(call).metadata)}, {}

    def metadata_show(self, call):
        key = call.operation.params["id"]
        with self.lock:
            metadata = self._metadata_server(call).metadata
            if key not in metadata:
                raise ApiError(404, "Metadata item was not found")
            return 200, {"meta": {key: metadata[key]}}, {}

    def metadata_create(self, call):
        """Merges the items into the server's metadata; answers all of it."""
        with self.lock:
            server = self._metadata_server(call, "update metadata")
            merged = self._set_metadata(server, {**server.metadata, **call.body["metadata"]})
        return 200, {"metadata": merged}, {}

    def metadata_update_all(self, call):
        with self.lock:
            server = self._metadata_server(call, "update metadata")
            replaced = self._set_metadata(server, dict(call.body["metadata"]))
        return 200, {"metadata": replaced}, {}

    def metadata_update(self, call):
        key, item = call.operation.params["id"], call.body["meta"]
        if key not in item:
            raise ApiError(400, "Request body and URI mismatch")
        with self.lock:
            server = self._metadata_server(call, "update metadata")
            self._set_metadata(server, {**server.metadata, **item})
        return 200, {"meta": item}, {}

    def metadata_delete(self, call):
        key = call.operation.params["id"]
        with self.lock:
            server = self._metadata_server(call)
            if key not in server.metadata:
                raise ApiError(404, "Metadata item was not found")
            self._metadata_server(call, "delete metadata")
            server.set(metadata={k: v for k, v in server.metadata.items() if k != key})
        return 204, None, {}

    def server_delete(self, call):
        with self.lock:
            server = self._server(call)
            if server.task_state == "deleting":
                return 204, None, {}
            server.set(task_state="deleting")
            previous = server.worker
        self._background(server, self._delete, previous)
        return 204, None, {}

    def _delete(self, server, previous):
        # A delete destroys the host at once, as Nova's hypervisor drivers do; a task
        # still running on it (a boot, a snapshot) finds it gone and ends.
        self.hosts.power_off(server.id, 0)
        if previous is not None:
            previous.join(timeout=120)
        self.hosts.power_off(server.id, 0)
        if self.network is not None:
            self.network.port_gone(server.port_id)
        if server.address:
            self.hosts.release(server.address)
        with self.lock:
            self.servers.pop(server.id, None)
        self.log(f"deleted server {server.id} ({server.name})")
        # The disk goes last: here a directory tree whose removal takes seconds under
        # load (a cloud frees a disk file), which Nova's API never makes a client wait for.
        self.hosts.remove(server.id)

    def server_stop(self, call):
        with self.lock:
            server = self._server(call)
            if server.vm_state != "active" or server.task_state is not None:
                raise ApiError(409, f"Cannot 'stop' instance {server.id} while it is in "
                                    f"vm_state {server.vm_state}")
            server.set(task_state="powering-off")
        self._background(server, self._stop)
        return 202, None, {}

    def _stop(self, server):
        self.hosts.power_off(server.id, grace=30)
        with self.lock:
            if server.task_state == "powering-off":
                server.set(vm_state="stopped", task_state=None, power_state=4)

    def server_create_image(self, call):
        body = call.body["createImage"]
        with self.lock:
            server = self._server(call)
            if server.vm_state not in ("active", "stopped") or server.task_state is not None:
                raise ApiError(409, f"Cannot 'createImage' instance {server.id} while it is "
                                    f"in vm_state {server.vm_state}")
            server.set(task_state="image_snapshot")
        glance = Glance(call.caller, call.token)
        properties = dict(body.get("metadata", {}))
        properties.update({"name": body["name"], "disk_format": "raw",
                           "container_format": "bare", "visibility": "private",
                           "image_type": "snapshot",
                           "instance_uuid": server.id, "base_image_ref": server.image_id})
        image = glance.create(properties)
        self._background(server, self._snapshot, glance, image["id"])
        headers = {"Location": Glance.location(call.caller, image["id"])}
        if _at_least(call.version, "2.45"):
            return 202, {"image_id": image["id"]}, headers
        return 202, None, headers

    def _snapshot(self, server, glance, image_id):
        server.set(task_state="image_uploading")
        if self.faults.take("slow_snapshot"):
            time.sleep(SLOW_SNAPSHOT_SECONDS)
        with tempfile.TemporaryDirectory(dir=self.hosts.dir) as work:
            data = os.path.join(work, "root.tar.zst")
            try:
                self.hosts.tarball(server.id, data)
                glance.upload(image_id, data)
            except (OSError, subprocess.CalledProcessError, RuntimeError, HostError) as error:
                glance.delete(image_id)
                with self.lock:
                    if server.task_state == "deleting":
                        return  # deleted mid-snapshot: Nova drops the image too
                raise RuntimeError(f"snapshot {image_id} failed: {error}")
        with self.lock:
            if server.task_state == "image_uploading":
                server.set(task_state=None)
        self.log(f"image {image_id} uploaded from server {server.id}")

    # -- reports ---------------------------------------------------------------------

    def report(self):
        with self.lock:
            return {
                "servers": [{"id": s.id, "name": s.name, "status": s.status,
                             "task_state": s.task_state, "address": s.address}
                            for s in self.servers.values()],
                "keypairs": [k["name"] for k in self.keypairs.values()],
                "public_keys": list(self.public_keys),
                "created": list(self.created),
                "containers": self.hosts.running(),
                "floating_ips": self.network.report() if self.network else [],
                "errors": list(self.errors),
                "faults": vars(self.faults),
            }

    def shutdown(self):
        """Destroys every host left (the stand-in is going away)."""
        if self.network is not None:
            self.network.shutdown()
        for server_id in list(self.servers):
            self.hosts.remove(server_id)


def _only_paging(query, what):
    """Filters the stand-in does not implement are refused, never ignored: a list that
    silently ignored one would answer more than Nova does."""
    unknown = sorted(set(query) - {"limit", "marker"})
    if unknown:
        raise ApiError(501, f"the stand-in does not implement the {what} filters {unknown}")


def _page(items, query, key, what):
    marker = query.get("marker", [None])[0]
    if marker is not None:
        keys = [key(i) for i in items]
        if marker not in keys:
            raise ApiError(400, f"marker [{marker}] not found")
        items = items[keys.index(marker) + 1:]
    if "limit" in query:
        items = items[:int(query["limit"][0])]
    return items


def _without(view, key):
    view.pop(key, None)
    return view


def _mac(server_id):
    digest = hashlib.sha256(server_id.encode()).hexdigest()
    return "fa:16:3e:" + ":".join(digest[i:i + 2] for i in range(0, 6, 2))


def _generate_key():
    """A key pair Nova would generate for a create without public_key."""
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "",
                        "-f", path], check=True)
        with open(path) as private, open(path + ".pub") as public:
            return private.read(), public.read()


def _fingerprint(public_key):
    """The MD5 fingerprint Nova reports (aa:bb:...), from ssh-keygen."""
    done = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", "-"], input=public_key,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ApiError(400, "Keypair data is invalid: failed to generate fingerprint")
    return done.stdout.split()[1].removeprefix("MD5:")
