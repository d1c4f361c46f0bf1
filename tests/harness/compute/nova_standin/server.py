"""The HTTP side: every request goes through Nova's routes, microversion negotiation and
request schemas; every successful answer through Nova's success codes and response
schemas. A broken request gets Nova's 400 and is recorded as a violation, so is a broken
answer; a call Nova has but the stand-in does not implement gets 501 and is recorded.
Test control lives under /_standin/ (faults to inject, the report, a reset, and `age`,
which makes every server and key pair older)."""

import json
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nova.api.openstack import api_version_request

from . import network
from .api import LEGACY_VERSION_HEADER, PREFIX, VERSION_HEADER, ApiError, parse_query

NETWORK_PREFIX = "/networking/v2.0"


@dataclass
class Call:
    operation: object
    version: object
    body: object
    query: dict
    caller: object
    token: str


class Journal:
    """What happened, for the report: calls, schema violations, unimplemented calls."""

    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        self.calls, self.violations, self.unimplemented = [], [], []

    def add(self, kind, entry):
        with self.lock:
            getattr(self, kind).append(entry)


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, api, identity, compute, network, log):
        super().__init__(address, Handler)
        self.api, self.identity, self.compute, self.log = api, identity, compute, log
        self.network = network
        self.journal = Journal()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandIn

    def log_message(self, fmt, *args):
        pass  # the journal records every call

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        raw = self._read_body()
        if url.path.startswith("/_standin/"):
            return self._control(method, url.path, raw)
        started = time.monotonic()
        api = self.server.api
        version = api_version_request.APIVersionRequest(api_version_request.DEFAULT_API_VERSION)
        name = "-"
        try:
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "Malformed request body")
            query = parse_query(url.query)
            if url.path == "/":
                operation, caller, token = api.root_operation(method), None, None
            elif url.path == PREFIX:
                # Nova serves the bare version document without authentication.
                operation, caller, token = api.resolve(method, "/", body), None, None
            elif url.path.startswith(NETWORK_PREFIX + "/"):
                return self._network(method, url, body, query, started)
            elif url.path.startswith(PREFIX + "/"):
                version = api.version(self.headers)
                token = self.headers.get("X-Auth-Token")
                caller = self.server.identity.check(token)
                operation = api.resolve(method, url.path[len(PREFIX):], body)
            else:
                raise ApiError(404, f"The resource could not be found: {url.path}")
            name = operation.name
            problems = api.check_request(operation, version, body, query)
            if problems:
                self._violation(method, url, name, version, problems, body)
                raise ApiError(400, "; ".join(problems))
            handler = self.server.compute.handlers.get(operation.name)
            if handler is None:
                self.server.journal.add("unimplemented", f"{method} {url.path} ({name})")
                raise ApiError(501, f"the Compute stand-in does not implement {name}")
            status, answer, headers = handler(Call(operation, version, body, query, caller, token))
            problems = api.check_response(operation, version, status, answer)
            if problems:
                self._violation(method, url, name, version, problems, answer)
        except ApiError as error:
            status, answer, headers = error.status, error.body(), {}
        except Exception as error:  # the stand-in's own bug: answered, and fails the test
            error = self._crash(method, url, error)
            status, answer, headers = error.status, error.body(), {}
        self._answer(status, answer, headers, version)
        self.server.journal.add("calls", {
            "method": method, "path": url.path, "query": url.query, "operation": name,
            "version": version.get_string(), "status": status,
            "ms": round((time.monotonic() - started) * 1000)})

    def _network(self, method, url, body, query, started):
        """Networking: Neutron's rules (neutron-lib) instead of Nova's schemas."""
        path = url.path[len(NETWORK_PREFIX):]
        resource = path.strip("/").split("/")[0]
        name = f"neutron {method} {resource}"
        try:
            caller = self.server.identity.check(self.headers.get("X-Auth-Token"))
            if resource not in network.RESOURCES:
                self.server.journal.add("unimplemented", f"{method} {url.path}")
                raise ApiError(501, f"the networking stand-in does not implement {path}")
            problems = network.check_query(resource, query)
            if method in ("POST", "PUT"):
                problems += network.check_body(resource, body, method == "POST", caller.project_id)
            if problems:
                self._violation(method, url, name, None, problems, body)
                raise ApiError(400, "; ".join(problems))
            status, answer = self.server.network.handle(method, path, query, body, caller)
            items = [] if answer is None else next(iter(answer.values()))
            for item in items if isinstance(items, list) else [items]:
                problems += network.check_answer(resource, item)
            if problems:
                self._violation(method, url, name, None, problems, answer)
        except Exception as error:
            if not isinstance(error, ApiError):
                error = self._crash(method, url, error)
            status, answer = error.status, {"NeutronError": {
                "type": "HTTPError", "message": error.message, "detail": ""}}
        self._answer(status, answer, {})
        self.server.journal.add("calls", {
            "method": method, "path": url.path, "query": url.query, "operation": name,
            "version": "-", "status": status,
            "ms": round((time.monotonic() - started) * 1000)})

    def _crash(self, method, url, error):
        """An unexpected exception while answering: recorded as the stand-in's error."""
        detail = "".join(traceback.format_exception(error))[-2000:]
        self.server.compute.errors.append(f"{method} {url.path}: {detail}")
        self.server.log(f"ERROR {method} {url.path}: {detail}")
        return ApiError(500, f"the stand-in failed: {error}")

    def _violation(self, method, url, name, version, problems, document):
        entry = {"call": f"{method} {url.path}", "operation": name,
                 "version": version.get_string() if version else "-", "problems": problems,
                 "document": json.dumps(document)[:4000]}
        self.server.journal.add("violations", entry)
        self.server.log(f"SCHEMA VIOLATION {entry}")

    def _answer(self, status, body, headers, version=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if version is not None:
            self.send_header(VERSION_HEADER, f"compute {version.get_string()}")
            self.send_header(LEGACY_VERSION_HEADER, version.get_string())
            self.send_header("Vary", f"{VERSION_HEADER}, {LEGACY_VERSION_HEADER}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if data:
            self.wfile.write(data)

    # -- test control ----------------------------------------------------------------

    def _control(self, method, path, raw):
        compute, journal = self.server.compute, self.server.journal
        if method == "GET" and path == "/_standin/report":
            report = compute.report()
            with journal.lock:
                report.update(calls=list(journal.calls), violations=list(journal.violations),
                              unimplemented=list(journal.unimplemented))
            return self._answer(200, report, {})
        if method == "POST" and path == "/_standin/faults":
            try:
                faults = json.loads(raw or b"{}")
                for name, count in faults.items():
                    if not hasattr(compute.faults, name) or not isinstance(count, int):
                        raise ValueError(f"unknown fault {name}")
                    setattr(compute.faults, name, count)
            except ValueError as error:
                return self._answer(400, {"error": str(error)}, {})
            return self._answer(200, vars(compute.faults), {})
        if method == "POST" and path == "/_standin/age":
            try:
                seconds = json.loads(raw or b"{}")["seconds"]
                if not isinstance(seconds, int) or seconds < 0:
                    raise ValueError("seconds: a whole number of seconds, at least 0")
            except (ValueError, KeyError, TypeError) as error:
                return self._answer(400, {"error": f"age: {error}"}, {})
            compute.age(seconds)
            return self._answer(204, None, {})
        if method == "POST" and path == "/_standin/reset":
            journal.clear()
            compute.errors.clear()
            compute.public_keys.clear()
            compute.created.clear()
            for name in vars(compute.faults):
                setattr(compute.faults, name, 0)
            return self._answer(204, None, {})
        return self._answer(404, {"error": f"no control endpoint {method} {path}"}, {})
