"""The failover gate in the check registry: listed and reported like every check, but its
test (tests/failover) is written by hand: it runs only with --failover, alone."""

from kubeaccept.model.registry import check
from kubeaccept.model.roles import CONTROL_PLANE


@check("cluster_failover",
       "with --failover only: a control plane powered off, the endpoint, etcd, writes and DNS "
       "recover within the budget; powered on, it rejoins",
       area="HA", roles=(CONTROL_PLANE,), needs=(), destructive=True,
       reads=("power methods (kubeaccept_power_off/on)",
              "/readyz through the endpoint, etcdctl, a ConfigMap write, nslookup and dig, "
              "sampled during the outage"),
       asserts="see 'The failover gate' below",
       prevents="an HA cluster that is not: the API or DNS gone with one master (report 03)")
def _cluster_failover(ctx):  # the gate runs from kubeaccept.failover.plugin (above the checks)
    raise NotImplementedError("cluster_failover runs only as its own test, with --failover")
