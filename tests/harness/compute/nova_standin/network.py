"""The few Networking (Neutron) calls packer's openstack builder makes for a floating IP,
held to neutron-lib's own resource definitions (Neutron publishes no JSON schemas): a
request body is checked the way Neutron prepares it (allowed on create or update, known,
values through Neutron's validators), query filters must be filterable attributes, and
every answered attribute must be a visible one whose value passes its validator.

A floating IP is a loopback address of its own; associated with a server's port, it
forwards TCP port 22 to the server's fixed address (Neutron's 1:1 NAT, here a relay)."""

import datetime
import socket
import threading
import uuid

from neutron_lib.api import attributes, validators
from neutron_lib.api.definitions import external_net, l3
from neutron_lib.api.definitions import network as network_def

from .api import ApiError

PUBLIC_NETWORK_ID = "9d1e9ab0-5f57-4c6e-9a8a-0a1b2c3d4e5f"
PUBLIC_SUBNET_ID = "3b0b6f4e-7a55-4d0e-8c1b-5f6e7d8c9b0a"
PRIVATE_NETWORK_ID = "5e0c1a7d-2b3c-4d5e-8f9a-0b1c2d3e4f50"
PRIVATE_SUBNET_ID = "6f1d2b8e-3c4d-4e5f-9a0b-1c2d3e4f5061"

# Standard attributes Neutron's standard-attr-timestamp extension (neutron/extensions/
# timestamp.py, not in neutron-lib) adds to every resource with standard attributes,
# floating IPs among them.
TIMESTAMPS = {name: {"allow_post": False, "allow_put": False, "is_visible": True,
                     "default": None, "is_filter": True}
              for name in ("created_at", "updated_at")}

RESOURCES = {
    "floatingips": {**l3.RESOURCE_ATTRIBUTE_MAP["floatingips"], **TIMESTAMPS},
    "networks": {**network_def.RESOURCE_ATTRIBUTE_MAP["networks"],
                 **external_net.RESOURCE_ATTRIBUTE_MAP["networks"]},
}
# Neutron answers both names for the owner; only tenant_id is in the definitions.
OWNER_ALIASES = {"project_id": "tenant_id"}
PAGING = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}


def _attributes(resource):
    return RESOURCES[resource]


def check_body(resource, body, create, project_id):
    """Violations of Neutron's rules for a create (POST) or update (PUT) body."""
    singular = resource[:-1]
    if not isinstance(body, dict) or set(body) != {singular}:
        return [f"request body: Neutron expects {{\"{singular}\": {{...}}}}, got {body!r}"]
    values = dict(body[singular])
    info = attributes.AttributeInfo(_attributes(resource))
    problems = []
    try:
        info.verify_attributes({OWNER_ALIASES.get(k, k): v for k, v in values.items()})
        if create:
            # Neutron fills the owner in from the caller's token first.
            values.setdefault("tenant_id", project_id)
            info.fill_post_defaults(values, check_allow_post=True)
        else:
            for name in values:
                if not _attributes(resource).get(name, {}).get("allow_put"):
                    problems.append(f"request body: Cannot update read-only attribute {name}")
        info.convert_values(values)
    except Exception as error:  # neutron-lib raises webob HTTP errors or InvalidInput
        problems.append(f"request body: {getattr(error, 'explanation', None) or error}")
    return problems


def check_query(resource, query):
    attrs = _attributes(resource)

    def is_filter(name):
        return attrs.get(OWNER_ALIASES.get(name, name), {}).get("is_filter")

    return [f"query: {name} is not a filter of {resource}" for name in query
            if name not in PAGING and not is_filter(name)]


def check_answer(resource, item):
    """Every attribute visible in neutron-lib, every value passing its validator."""
    problems = []
    attrs = _attributes(resource)
    for name, value in item.items():
        spec = attrs.get(OWNER_ALIASES.get(name, name))
        if spec is None or not spec.get("is_visible"):
            problems.append(f"response: {name} is not a visible attribute of {resource}")
            continue
        for rule, data in (spec.get("validate") or {}).items():
            message = validators.get_validator(rule)(value, data)
            if message:
                problems.append(f"response: {name}: {message}")
    return problems


def _stamp():
    """Now, as Neutron shows a timestamp: ISO 8601, whole seconds, UTC ("Z")."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Relay:
    """TCP port 22 of a floating address relayed to a fixed address."""

    def __init__(self, listen, target):
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((listen, 22))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection((self.target, 22), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self):
        self.sock.close()


def _pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Network:
    def __init__(self, compute, addresses, log):
        self.compute = compute
        self.addresses = addresses
        self.log = log
        self.floating = {}  # id -> floating IP
        self.relays = {}  # floating IP id -> Relay
        self.lock = threading.RLock()

    def handle(self, method, path, query, body, caller):
        """(status, answer) for METHOD PATH below /v2.0; raises ApiError."""
        parts = [p for p in path.split("/") if p]
        if parts == ["networks"] and method == "GET":
            return 200, {"networks": self._list("networks", [self._public(caller)], query)}
        if parts[:1] != ["floatingips"] or len(parts) > 2:
            raise ApiError(501, f"the networking stand-in does not implement {method} {path}")
        if len(parts) == 1 and method == "GET":
            with self.lock:
                mine = [f for f in self.floating.values() if f["tenant_id"] == caller.project_id]
            return 200, {"floatingips": self._list("floatingips", mine, query)}
        if len(parts) == 1 and method == "POST":
            return 201, {"floatingip": self._create(body["floatingip"], caller)}
        fip = self._get(parts[1], caller)
        if method == "GET":
            return 200, {"floatingip": dict(fip)}
        if method == "PUT":
            return 200, {"floatingip": self._update(fip, body["floatingip"])}
        if method == "DELETE":
            self._associate(fip, None)
            with self.lock:
                self.floating.pop(fip["id"], None)
            self.addresses.append(fip["floating_ip_address"])
            return 204, None
        raise ApiError(405, f"{method} is not allowed on {path}")

    @staticmethod
    def _public(caller):
        return {"id": PUBLIC_NETWORK_ID, "name": "public", "subnets": [PUBLIC_SUBNET_ID],
                "admin_state_up": True, "status": "ACTIVE", "tenant_id": caller.project_id,
                "project_id": caller.project_id, "shared": False, "router:external": True}

    @staticmethod
    def _list(resource, items, query):
        def matches(item):
            for name, values in query.items():
                if name in PAGING:
                    continue
                if str(item.get(name)).lower() not in [v.lower() for v in values]:
                    return False
            return True

        return [dict(i) for i in items if matches(i)]

    def _get(self, fip_id, caller):
        with self.lock:
            fip = self.floating.get(fip_id)
        if fip is None or fip["tenant_id"] != caller.project_id:
            raise ApiError(404, f"Floating IP {fip_id} could not be found.")
        return fip

    def _create(self, request, caller):
        if request["floating_network_id"] != PUBLIC_NETWORK_ID:
            raise ApiError(404, f"Network {request['floating_network_id']} could not be found.")
        if not self.addresses:
            raise ApiError(409, "No more IP addresses available on network public.")
        now = _stamp()
        fip = {"id": str(uuid.uuid4()), "floating_ip_address": self.addresses.pop(0),
               "floating_network_id": PUBLIC_NETWORK_ID,
               "router_id": None, "port_id": None, "fixed_ip_address": None,
               "tenant_id": caller.project_id, "project_id": caller.project_id,
               "status": "DOWN", "created_at": now, "updated_at": now}
        with self.lock:
            self.floating[fip["id"]] = fip
        if request.get("port_id"):
            self._associate(fip, request["port_id"])
        return dict(fip)

    def _update(self, fip, request):
        if "port_id" in request:
            self._associate(fip, request["port_id"])
        return dict(fip)

    def _associate(self, fip, port_id):
        with self.lock:
            relay = self.relays.pop(fip["id"], None)
            if relay:
                relay.close()
            if port_id is None:
                fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN",
                           updated_at=_stamp())
                return
            server = self.compute.server_by_port(port_id)
            if server is None or not server.address:
                raise ApiError(404, f"Port {port_id} could not be found.")
            self.relays[fip["id"]] = Relay(fip["floating_ip_address"], server.address)
            fip.update(port_id=port_id, fixed_ip_address=server.address,
                       router_id="0c3f1e2d-4b5a-4c6d-8e7f-9a0b1c2d3e4f", status="ACTIVE",
                       updated_at=_stamp())
        self.log(f"floating IP {fip['floating_ip_address']} -> {fip['fixed_ip_address']}")

    def port_gone(self, port_id):
        """A deleted server's port takes its floating IP association with it."""
        with self.lock:
            for fip in self.floating.values():
                if fip["port_id"] == port_id:
                    self._associate(fip, None)

    def report(self):
        with self.lock:
            return [{"id": f["id"], "address": f["floating_ip_address"],
                     "port_id": f["port_id"]} for f in self.floating.values()]

    def shutdown(self):
        with self.lock:
            for relay in self.relays.values():
                relay.close()
            self.relays.clear()
