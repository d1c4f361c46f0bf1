"""A stand-in for OpenStack Compute (Nova), held to Nova's own API.

Nova cannot run on the test machines, so the end-to-end tests of `build` talk to this
instead. It routes with Nova's own route table, checks every request and every response
against Nova's own JSON schemas for the request's microversion (from the `nova` package),
and implements only what packer's openstack builder calls. A server is a real systemd host
(tests/harness/systemd-host.sh) on a loopback address of its own; createImage makes a real
Glance image holding the stopped server's root filesystem as a tarball.
"""
