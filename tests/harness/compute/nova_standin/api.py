"""Nova's own description of its API, read from the `nova` package: the route table,
microversion negotiation, the version documents and the JSON schemas every request and
response is checked against. Nothing here runs Nova; it only reads what Nova declares.
"""

import re
import urllib.parse
from dataclasses import dataclass, field

import microversion_parse
from nova import exception
from nova.api.openstack import api_version_request
from nova.api.openstack.compute import routes
from nova.api.openstack.compute import versions as nova_versions
from nova.api.openstack.compute.views import versions as version_views
from nova.api.validation import validators

# The stand-in serves the v2.1 API under this prefix, as Nova's api-paste does.
PREFIX = "/v2.1"
VERSION_HEADER = "OpenStack-API-Version"
LEGACY_VERSION_HEADER = "X-OpenStack-Nova-API-Version"


class ApiError(Exception):
    """An answer in Nova's error shape: {"<kind>": {"code": N, "message": "..."}}."""

    KINDS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
             405: "badMethod", 406: "notAcceptable", 409: "conflictingRequest",
             500: "computeFault", 501: "notImplemented"}

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self):
        kind = self.KINDS.get(self.status, "computeFault")
        return {kind: {"code": self.status, "message": self.message}}


@dataclass
class Operation:
    """One call resolved through Nova's routes: `name` is the controller method that
    handles it in Nova ("ServersController.create", "ServersController._stop" for the
    os-stop action), `method` the function carrying Nova's schemas."""

    name: str
    method: object
    params: dict = field(default_factory=dict)


def _controller_classes(factory):
    """The controller class and its action sub-controllers behind a route's factory,
    without instantiating anything (functools.partial(_create_controller, cls, [...]))."""
    main, extra = factory.args
    return main, list(extra)


class Api:
    def __init__(self):
        self._routes = []
        for entry in routes.ROUTE_LIST:
            path, methods = entry[0], entry[1]
            if not isinstance(methods, dict):
                continue  # ('', '/'): a redirect
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
            self._routes.append((re.compile(f"^{pattern}$"), methods))
        self.min_version = api_version_request.min_api_version()
        self.max_version = api_version_request.max_api_version()

    # -- routing ---------------------------------------------------------------------

    def resolve(self, method, path, body):
        """The Nova operation for METHOD PATH, PATH relative to the v2.1 prefix."""
        if path in ("", "/"):
            path = "/"
        allowed = False
        for regex, methods in self._routes:
            match = regex.match(path)
            if not match:
                continue
            allowed = True
            if method not in methods:
                continue
            factory, action = methods[method]
            main, extra = _controller_classes(factory)
            if action == "action":
                return self._action(main, extra, body, match.groupdict())
            # Path parameters arrive percent-encoded (a key pair name may hold spaces);
            # Nova's router hands them to the controller decoded.
            params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            return Operation(f"{main.__name__}.{action}", getattr(main, action), params)
        if allowed:
            raise ApiError(405, f"The method {method} is not allowed for {path}.")
        raise ApiError(404, f"The resource could not be found: {path}")

    @staticmethod
    def _action(main, extra, body, params):
        if not isinstance(body, dict) or len(body) != 1:
            raise ApiError(400, "Malformed request body: an action body names one action.")
        (name,) = body
        for cls in [main, *extra]:
            method_name = getattr(cls, "wsgi_actions", {}).get(name)
            if method_name:
                return Operation(f"{cls.__name__}.{method_name}", getattr(cls, method_name), params)
        raise ApiError(404, f"There is no such action: {name}")

    @staticmethod
    def root_operation(method):
        """`GET /` (the version list) is Nova's Versions resource, outside the v2.1 routes."""
        if method != "GET":
            raise ApiError(405, f"The method {method} is not allowed for /.")
        return Operation("Versions.index", nova_versions.Versions.index)

    # -- microversions ---------------------------------------------------------------

    def version(self, headers):
        """The request's microversion, negotiated as Nova does (2.1 without a header)."""
        text = microversion_parse.get_version(
            headers, service_type="compute", legacy_headers=[LEGACY_VERSION_HEADER])
        if text is None:
            return api_version_request.APIVersionRequest(api_version_request.DEFAULT_API_VERSION)
        if text == "latest":
            return self.max_version
        try:
            version = api_version_request.APIVersionRequest(text)
        except exception.InvalidAPIVersionString as error:
            raise ApiError(400, str(error))
        if not version.matches(self.min_version, self.max_version):
            raise ApiError(406, f"Version {text} is not supported by the API. Minimum is "
                                f"{self.min_version.get_string()} and maximum is "
                                f"{self.max_version.get_string()}.")
        return version

    # -- documents -------------------------------------------------------------------

    @staticmethod
    def versions_document(base_url):
        return version_views.ViewBuilder(base_url).build_versions(nova_versions.VERSIONS)

    @staticmethod
    def version_document(base_url):
        return version_views.ViewBuilder(base_url).build_version(nova_versions.VERSIONS["v2.1"])

    # -- schemas ---------------------------------------------------------------------

    def check_request(self, operation, version, body, query):
        """Violations of Nova's request body and query schemas (empty when none). Where
        Nova declares no schema it checks nothing, and neither does the stand-in."""
        problems = []
        body_schemas = getattr(operation.method, "request_body_schemas", None)
        if body_schemas is not None:
            problems += _check(body_schemas, version, body, is_body=True, what="request body")
        query_schemas = getattr(operation.method, "request_query_schemas", None)
        if query_schemas is not None:
            problems += _check(query_schemas, version, query, is_body=False, what="query")
        return problems

    def check_response(self, operation, version, status, body):
        """Violations of Nova's success code and response body schema for a 2xx answer."""
        problems = []
        codes = getattr(operation.method, "wsgi_codes", None)
        expected = codes(_VersionOnly(version)) if codes else 200
        if status != expected:
            problems.append(f"status: Nova answers {expected} here, not {status}")
        schemas = getattr(operation.method, "response_body_schemas", None)
        if schemas is None:
            return problems + [f"response: Nova declares no response schema for {operation.name}"]
        return problems + _check(schemas, version, body, is_body=True, what="response body")


class _VersionOnly:
    """What Nova's WSGICodes reads from a request: its microversion."""

    def __init__(self, version):
        self.api_version_request = version


def _check(schemas, version, target, is_body, what):
    """Validates as nova.api.validation does: the schema whose microversion range holds
    the request's version, with Nova's own validator (its formats and number rules)."""
    for schema, min_version, max_version in schemas._schemas:
        if version.matches(min_version, max_version):
            try:
                validators._SchemaValidator(schema, False, is_body).validate(target)
            except exception.ValidationError as error:
                return [f"{what}: {error}"]
            return []
    return []


def parse_query(query_string):
    """The query as Nova's validators see it: each name with the list of its values."""
    return urllib.parse.parse_qs(query_string, keep_blank_values=True)

