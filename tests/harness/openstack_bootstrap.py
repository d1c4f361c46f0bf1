"""Idempotent set-up of the test cloud through Keystone's v3 API (standard library only).

Creates the service project and the glance and nova service users, the image service and its
endpoints, project ci-project with user ci-user (role member), and an application
credential of ci-user with a fixed secret, whose ID it prints. Reads KEYSTONE and GLANCE.
With `register REGION TYPE NAME URL`, puts a service (the Compute stand-in) in the catalog;
with `register-image REGION`, GLANCE as REGION's image service (a second region's Glance).
"""
import json
import os
import sys
import urllib.error
import urllib.request

KEYSTONE = os.environ["KEYSTONE"]
GLANCE = os.environ["GLANCE"]
REGION = "RegionOne"
NOVA_SERVICE_PASSWORD = "nova-service-secret"


def call(method, path, token=None, body=None):
    request = urllib.request.Request(
        KEYSTONE + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    if token:
        request.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), error.headers


def must(result, what):
    code, body, headers = result
    if code not in (200, 201, 204):
        sys.exit(f"bootstrap: {what}: HTTP {code}: {body}")
    return body, headers


def token(user, password, project):
    auth = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    body, headers = must(call("POST", "/auth/tokens", body=auth), f"token for {user}")
    return headers["X-Subject-Token"], body


def find(tok, collection, **query):
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    body, _ = must(call("GET", f"/{collection}?{qs}", tok), f"list {collection}")
    return body[collection][0] if body[collection] else None


def ensure(tok, collection, singular, query, create):
    found = find(tok, collection, **query)
    if found:
        return found["id"]
    body, _ = must(call("POST", f"/{collection}", tok, {singular: create}), f"create {singular}")
    return body[singular]["id"]


def grant(tok, project, user, role_name):
    role = find(tok, "roles", name=role_name)
    must(call("PUT", f"/projects/{project}/users/{user}/roles/{role['id']}", tok), f"grant {role_name}")


def endpoints(tok, service_type, name, url, region=REGION):
    """The service's three endpoints in `region`, pointing at `url` (moved if they differ)."""
    service = ensure(tok, "services", "service", {"type": service_type},
                     {"type": service_type, "name": name, "enabled": True})
    body, _ = must(call("GET", f"/endpoints?service_id={service}&region_id={region}", tok),
                   "list endpoints")
    have = {e["interface"]: e for e in body["endpoints"]}
    for interface in ("public", "internal", "admin"):
        if interface not in have:
            must(call("POST", "/endpoints", tok, {"endpoint": {
                "service_id": service, "interface": interface, "url": url,
                "region_id": region, "enabled": True}}), "create endpoint")
        elif have[interface]["url"] != url:
            must(call("PATCH", f"/endpoints/{have[interface]['id']}", tok,
                      {"endpoint": {"url": url}}), "move endpoint")


def register(region, service_type, name, url):
    """`register REGION TYPE NAME URL`: a service in a region of its own (the Compute
    stand-in's region also gets the image service, so one region has both)."""
    admin = register_image(region)
    endpoints(admin, service_type, name, url, region)


def register_image(region):
    """`register-image REGION`: GLANCE as the image service of REGION (a second region)."""
    admin, _ = token("admin", "admin-secret", "admin")
    if call("GET", f"/regions/{region}", admin)[0] == 404:
        must(call("POST", "/regions", admin, {"region": {"id": region}}), "create region")
    endpoints(admin, "image", "glance", GLANCE, region)
    return admin


def app_credential(user, password, project, name, secret):
    tok, body = token(user, password, project)
    uid = body["token"]["user"]["id"]
    code, listing, _ = call("GET", f"/users/{uid}/application_credentials?name={name}", tok)
    for existing in (listing or {}).get("application_credentials", []) if code == 200 else []:
        check = {"auth": {"identity": {"methods": ["application_credential"],
                 "application_credential": {"id": existing["id"], "secret": secret}}}}
        if call("POST", "/auth/tokens", body=check)[0] == 201:
            return existing["id"]
        must(call("DELETE", f"/users/{uid}/application_credentials/{existing['id']}", tok), "delete stale")
    body, _ = must(call("POST", f"/users/{uid}/application_credentials", tok, {
        "application_credential": {"name": name, "secret": secret}}), "create application credential")
    return body["application_credential"]["id"]


def main():
    admin, _ = token("admin", "admin-secret", "admin")
    service = ensure(admin, "projects", "project", {"name": "service"},
                     {"name": "service", "domain_id": "default"})
    glance = ensure(admin, "users", "user", {"name": "glance"},
                    {"name": "glance", "domain_id": "default", "password": "glance-service-secret"})
    grant(admin, service, glance, "service")
    grant(admin, service, glance, "admin")
    # The Compute stand-in's service user (Nova's [service_user]): its token lets Glance
    # accept a caller's token that expired during a snapshot upload.
    nova = ensure(admin, "users", "user", {"name": "nova"},
                  {"name": "nova", "domain_id": "default", "password": NOVA_SERVICE_PASSWORD})
    grant(admin, service, nova, "service")
    endpoints(admin, "image", "glance", GLANCE)
    project = ensure(admin, "projects", "project", {"name": "ci-project"},
                     {"name": "ci-project", "domain_id": "default"})
    user = ensure(admin, "users", "user", {"name": "ci-user"},
                  {"name": "ci-user", "domain_id": "default", "password": "ci-user-secret",
                   "default_project_id": project})
    grant(admin, project, user, "member")
    print(app_credential("ci-user", "ci-user-secret", "ci-project", "ci-appcred", "ci-appcred-secret"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["register"] and len(sys.argv) == 6:
        register(*sys.argv[2:])
    elif sys.argv[1:2] == ["register-image"] and len(sys.argv) == 3:
        register_image(sys.argv[2])
    elif len(sys.argv) == 1:
        main()
    else:
        sys.exit("usage: openstack_bootstrap.py [register REGION TYPE NAME URL | register-image REGION]")
