"""The load balancer serving the controlPlaneEndpoint."""

import pytest

from kubeaccept.checks import lb
from kubeaccept.roles import LB


@pytest.mark.roles(LB)
def lb_listening(node, verdict):
    """The load balancer listens on the API port."""
    verdict(lb.lb_listening(node))
