"""python -m nova_standin --listen ADDR --url-file F --state DIR --keystone URL --region R
                        --host-script systemd-host.sh --addresses 127.0.3.10-127.0.3.99
                        --floating-addresses 127.0.3.200-127.0.3.250
                        [--service-credentials FILE]

Serves until stdin closes (the test process that started it ended) or SIGTERM/SIGINT,
then destroys every host it booted. Writes its base URL to --url-file once it listens."""

import argparse
import json
import os
import signal
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore")  # eventlet's deprecation notice on import of nova


def main():
    parser = argparse.ArgumentParser(prog="nova_standin")
    parser.add_argument("--listen", required=True, help="loopback address to serve on")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--url-file", required=True)
    parser.add_argument("--state", required=True, help="directory for hosts and the log")
    parser.add_argument("--keystone", required=True, help="Keystone v3 URL")
    parser.add_argument("--region", required=True)
    parser.add_argument("--host-script", required=True, help="tests/harness/systemd-host.sh")
    parser.add_argument("--addresses", required=True, help="server address pool: A.B.C.x-A.B.C.y")
    parser.add_argument("--floating-addresses", required=True, help="floating IP pool, likewise")
    parser.add_argument("--service-credentials",
                        help='JSON {"user", "password", "project"} of a user with the service '
                             "role: sent to Glance as X-Service-Token, as Nova does")
    args = parser.parse_args()

    from .api import Api
    from .compute import Compute
    from .hosts import Hosts, address_pool
    from .network import Network
    from .openstack import Identity
    from .server import StandIn

    os.makedirs(args.state, exist_ok=True)
    log_file = open(os.path.join(args.state, "standin.log"), "a", buffering=1)
    log_lock = threading.Lock()

    def log(line):
        with log_lock:
            log_file.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    hosts = Hosts(args.host_script, args.state, address_pool(args.addresses))
    hosts.clean_leftovers()
    api = Api()
    compute = Compute(hosts, None, log)
    compute.network = Network(compute, address_pool(args.floating_addresses), log)
    service = None
    if args.service_credentials:
        with open(args.service_credentials) as f:
            service = json.load(f)
    identity = Identity(args.keystone, args.region, service)
    httpd = StandIn((args.listen, args.port), api, identity, compute, compute.network, log)
    compute.base_url = f"http://{args.listen}:{httpd.server_address[1]}"

    stopping = threading.Event()

    def stop(*_):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        stop()

    threading.Thread(target=watch_stdin, daemon=True).start()
    tmp = args.url_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(compute.base_url + "\n")
    os.replace(tmp, args.url_file)
    log(f"serving on {compute.base_url}")
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        compute.shutdown()
        log("stopped; every host destroyed")


if __name__ == "__main__":
    main()
