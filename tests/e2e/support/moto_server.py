"""Starts moto's server (`moto_server -H HOST -p PORT`) for the tests that
forward Step Functions tasks to an upstream endpoint.

moto 5.2 fails ECS RunTask for awsvpc tasks (Fargate) with an
AttributeError: its network interfaces have no `private_dns_name`. The
attribute is given here, derived from the private IP address as EC2 names
it (`ip-10-0-1-5.<region>.compute.internal`), so the seed's Fargate task
runs on moto.
"""

import sys

from moto.ec2.models.elastic_network_interfaces import NetworkInterface

if not hasattr(NetworkInterface, "private_dns_name"):
    NetworkInterface.private_dns_name = property(
        lambda self: "ip-{}.compute.internal".format((self.private_ip_address or "0.0.0.0").replace(".", "-")))

from moto.server import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
