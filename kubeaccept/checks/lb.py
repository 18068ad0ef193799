"""The API load balancer in front of the control planes."""

from __future__ import annotations

from kubeaccept.model.findings import Finding, needs_tool, passed
from kubeaccept.model.registry import Context, check
from kubeaccept.model.roles import LB


@check("lb_listening",
       "the load balancer listens on the API port",
       area="HA",
       roles=(LB,),
       reads=("ss -Htulnp",),
       asserts=("the load balancer listens on the API port (`loadbalancer_apiserver_port`, "
                "default 6443)"),
       prevents="controlPlaneEndpoint down")
def lb_listening(ctx: Context) -> list[Finding]:
    node = ctx.node
    if tool := node.facts.missing("listen-tcp"):
        return [needs_tool(ctx.check_id, node.host.name, tool, "to list the listening sockets")]
    port = int(node.host.vars.get("loadbalancer_apiserver_port") or 6443)
    owners = sorted({f"{ln.process or '?'} on {ln.address}" for ln in node.facts.listeners
                     if ln.proto == "tcp" and ln.port == port})
    subject = f"{node.host.name}:tcp/{port}"
    if owners:
        return [passed(subject, f"tcp/{port}: {', '.join(owners)}", "load balancer listening",
                       f"ss -tlnp: {owners[0]}")]
    return [Finding(subject, False, f"nothing listens on tcp/{port}",
                    "load balancer (HAProxy) listening on the controlPlaneEndpoint port",
                    "the controlPlaneEndpoint is down: kubelets, kubectl and joining nodes lose "
                    "the API (\"The connection to the server <VIP>:6443 was refused\")",
                    "systemctl status haproxy keepalived; haproxy -c -f /etc/haproxy/haproxy.cfg",
                    (f"ss -Htlnp shows no socket on port {port}",))]
