"""The real services the stand-in leans on, as Nova does: Keystone checks each caller's
token (and says which project and user it belongs to), Glance holds the images a server
boots from and the images createImage makes, reached with the caller's own token and,
as Nova's [service_user] does, a service token, so that a snapshot upload outlives the
caller's token (Glance's keystonemiddleware accepts an expired user token together with
a valid token of a user with the `service` role)."""

import datetime
import json
import threading
import time
import urllib.error
import urllib.request

from .api import ApiError


def _call(method, url, token, body=None, headers=None, data=None, timeout=60):
    request_headers = {"Accept": "application/json"}
    if token:
        request_headers["X-Auth-Token"] = token
    request_headers.update(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        request_headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=request_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), error.headers


def _expiry(token_body):
    """Seconds from now until the token's expires_at (Keystone's clock, ours here)."""
    try:
        expires = datetime.datetime.fromisoformat(token_body["expires_at"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0
    return (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


class Identity:
    """Token validation against Keystone (a token may validate itself), cached briefly and
    never past the token's expiry; and the stand-in's own service token, if it has a
    service user (`service`: {"user", "password", "project"}, domain Default)."""

    def __init__(self, keystone_url, region, service=None):
        self.keystone_url = keystone_url.rstrip("/")
        self.region = region
        self.service = service
        self._service_token = (0, None)
        self._cache = {}
        self._lock = threading.Lock()

    def check(self, token):
        if not token:
            raise ApiError(401, "The request you have made requires authentication.")
        with self._lock:
            cached = self._cache.get(token)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        status, body, _ = _call("GET", f"{self.keystone_url}/auth/tokens", token,
                                headers={"X-Subject-Token": token})
        if status != 200:
            raise ApiError(401, "The request you have made requires authentication.")
        caller = Caller(body["token"], self.region, self.service_token)
        with self._lock:
            self._cache[token] = (time.monotonic() + min(60, _expiry(body["token"])), caller)
        return caller

    def service_token(self):
        """A token of the service user, renewed when less than a minute is left; None
        without a service user."""
        if not self.service:
            return None
        with self._lock:
            until, token = self._service_token
            if token and until > time.monotonic():
                return token
            auth = {"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "name": self.service["user"], "domain": {"id": "default"},
                    "password": self.service["password"]}}},
                "scope": {"project": {"name": self.service["project"],
                                      "domain": {"id": "default"}}}}}
            status, body, headers = _call("POST", f"{self.keystone_url}/auth/tokens", None,
                                          body=auth)
            if status != 201:
                raise RuntimeError(f"the stand-in's service user cannot log in: HTTP {status}")
            token = headers["X-Subject-Token"]
            self._service_token = (time.monotonic() + _expiry(body["token"]) - 60, token)
            return token


class Caller:
    """Who is calling: project, user, and the image endpoint of their catalog."""

    def __init__(self, token_body, region, service_token=lambda: None):
        self.service_token = service_token
        self.project_id = token_body["project"]["id"]
        self.user_id = token_body["user"]["id"]
        self.image_url = None
        for service in token_body.get("catalog", []):
            if service["type"] != "image":
                continue
            for endpoint in service["endpoints"]:
                if endpoint["interface"] == "public" and endpoint.get("region_id") == region:
                    self.image_url = endpoint["url"].rstrip("/")
        if self.image_url is None:
            raise ApiError(500, f"the token's catalog has no public image endpoint in {region}")


class Glance:
    """The few Glance v2 calls Nova makes for booting and snapshots."""

    def __init__(self, caller, token):
        self.url = caller.image_url
        self.token = token
        self.service_token = caller.service_token

    def _call(self, method, url, **kwargs):
        service = self.service_token()
        if service:
            kwargs["headers"] = {**kwargs.get("headers", {}), "X-Service-Token": service}
        return _call(method, url, self.token, **kwargs)

    def get(self, image_id):
        status, body, _ = self._call("GET", f"{self.url}/v2/images/{image_id}")
        return body if status == 200 else None

    def create(self, properties):
        status, body, _ = self._call("POST", f"{self.url}/v2/images", body=properties)
        if status != 201:
            raise ApiError(500, f"Glance refused the snapshot image: HTTP {status}: {body}")
        return body

    def upload(self, image_id, path):
        with open(path, "rb") as data:
            size = data.seek(0, 2)
            data.seek(0)
            status, body, _ = self._call(
                "PUT", f"{self.url}/v2/images/{image_id}/file", data=data,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=600)
        if status != 204:
            raise RuntimeError(f"uploading image {image_id}: HTTP {status}: {body}")

    def download(self, image_id, path):
        """The image's data into `path` (a server booting a snapshot boots its data)."""
        service = self.service_token()
        headers = {"X-Auth-Token": self.token}
        if service:
            headers["X-Service-Token"] = service
        request = urllib.request.Request(f"{self.url}/v2/images/{image_id}/file",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as response, \
                    open(path, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"downloading image {image_id}: HTTP {error.code}") from error

    def delete(self, image_id):
        self._call("DELETE", f"{self.url}/v2/images/{image_id}")

    @staticmethod
    def location(caller, image_id):
        """The Location header Nova's createImage answers with (before 2.45)."""
        return f"{caller.image_url}/images/{image_id}"
