"""cluster_api_endpoint: the endpoint comes from the cluster (kubeadm-config), the kubeconfigs
on every node name it as kubeadm 1.37.2 writes them, and every apiserver's certificate covers
it, as Go's crypto/x509 decides (the fixtures' .tsv files are go1.26.8's own answers)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from kubeaccept.checks import controlplane, endpoint
from kubeaccept.model.apistate import ApiState
from kubeaccept.model.hosts import Inventory

from .factory import CP, facts, host, judge, on_cluster

FIX = Path(__file__).parent / "fixtures" / "endpoint"
VIP = "198.18.0.100"
CPS = [host("cp1", "198.18.0.11", CP), host("cp2", "198.18.0.12", CP)]
W1 = host("w1", "198.18.0.21")
K = "/etc/kubernetes/"


def api(cpe=f"{VIP}:6443") -> ApiState:
    conf = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n" + (
        f"controlPlaneEndpoint: {cpe}\n" if cpe else "")
    return ApiState(endpoint=f"https://{VIP}:6443", configmaps={
        "kube-system/kubeadm-config": {"data": {"ClusterConfiguration": conf}}})


def cert_with(ips, dns=()) -> bytes:
    """A certificate as the lab's pki issues it (python cryptography)."""
    from lab import pki
    ca = pki.issue("kubernetes", ca=True)
    return pki.issue("kube-apiserver", ca, usages=[pki.SERVER], dns=list(dns), ips=list(ips)).pem()[0]


def node(h, servers: dict[str, str], crt: bytes | None = None):
    sections = {"kubeconfigs": "\n".join(f"{K}{f} {s}" for f, s in servers.items())}
    if crt is not None:
        sections["certificates"] = f"{K}pki/apiserver.crt {base64.b64encode(crt).decode()}"
    return facts(h.name, sections=sections)


def healthy_facts(**override):
    """kubeadm 1.37.2's servers: admin/super-admin the endpoint; controller-manager and
    scheduler the node's own apiserver (kubeconfig.go getKubeConfigSpecsBase); kubelet.conf the
    endpoint on the init node and on workers, its own apiserver on a joined control plane
    (cmd/phases/join/kubelet.go)."""
    out = {}
    for h in CPS:
        own = f"https://{h.address}:6443"
        out[h.name] = node(h, {"admin.conf": f"https://{VIP}:6443",
                               "super-admin.conf": f"https://{VIP}:6443",
                               "kubelet.conf": f"https://{VIP}:6443" if h.name == "cp1" else own,
                               "controller-manager.conf": own, "scheduler.conf": own},
                           cert_with(["10.96.0.1", h.address, VIP], [h.name, "kubernetes"]))
    out["w1"] = node(W1, {"kubelet.conf": f"https://{VIP}:6443"})
    out.update(override)
    return out


def run(state=None, f=None):
    return judge("cluster_api_endpoint", api=state or api(),
                 cluster=on_cluster(hosts=[*CPS, W1], facts=f or healthy_facts()))


def bad(out):
    return {x.subject: x for x in out if not x.ok}


def test_kubeadms_own_layout_passes():
    out = run()
    assert bad(out) == {}
    assert next(x for x in out if x.subject == "endpoint").observed == (
        f"{VIP}:6443 (controlPlaneEndpoint in kube-system/kubeadm-config)")
    assert {x.subject for x in out} >= {"cp2:kubelet.conf", "w1:kubelet.conf",
                                        "cp1:apiserver.crt", "cp2:apiserver.crt"}


def test_a_worker_tied_to_one_control_plane():
    f = healthy_facts(w1=node(W1, {"kubelet.conf": "https://198.18.0.11:6443"}))
    b = bad(run(f=f))
    assert set(b) == {"w1:kubelet.conf"}
    x = b["w1:kubelet.conf"]
    assert x.observed == "server https://198.18.0.11:6443: control plane cp1 only"
    assert "w1 goes NotReady" in x.why
    assert f"--server=https://{VIP}:6443" in x.fix and "systemctl restart kubelet" in x.fix


def test_a_joined_control_planes_admin_conf_must_name_the_endpoint():
    """admin.conf is the endpoint's on every control plane; its own apiserver is allowed only
    where kubeadm writes it so (kubelet, controller-manager, scheduler)."""
    servers = {"admin.conf": "https://198.18.0.12:6443"}
    f = healthy_facts(cp2=node(CPS[1], servers, cert_with(["198.18.0.12", VIP])))
    b = bad(run(f=f))
    assert set(b) == {"cp2:admin.conf"}
    assert b["cp2:admin.conf"].expected == f"the endpoint {VIP}:6443"


def test_an_apiserver_certificate_without_the_endpoint_says_what_go_clients_print():
    crt = (FIX / "apiserver-without-endpoint.crt").read_bytes()
    go = dict(line.split("\t") for line in
              (FIX / "go1.26-verifyhostname.tsv").read_text().splitlines())
    f = healthy_facts(cp2=node(CPS[1], {"admin.conf": f"https://{VIP}:6443"}, crt))
    b = bad(run(f=f))
    assert set(b) == {"cp2:apiserver.crt"}
    x = b["cp2:apiserver.crt"]
    assert go[VIP] in x.why  # Go's own words for this certificate and host
    assert "apiServer.certSANs" in x.fix and "kubeadm init phase certs apiserver" in x.fix


@pytest.mark.parametrize("fixture", ["apiserver-without-endpoint", "apiserver-wildcard"])
def test_san_matching_agrees_with_go(fixture):
    """endpoint.covers/go_hostname_error against go1.26.8's Certificate.VerifyHostname."""
    ips, names = endpoint.sans((FIX / f"{fixture}.crt").read_bytes())
    suffix = "" if fixture == "apiserver-without-endpoint" else "-wildcard"
    for line in (FIX / f"go1.26-verifyhostname{suffix}.tsv").read_text().splitlines():
        target, answer = line.split("\t")
        assert endpoint.covers(ips, names, target) == (answer == "ok"), target
        if answer != "ok":
            assert endpoint.go_hostname_error(ips, names, target) == answer


def test_no_controlplane_endpoint_with_several_control_planes_is_kubeadms_refusal():
    b = bad(run(state=api(cpe="")))
    assert set(b) == {"endpoint"}
    assert endpoint.NO_ENDPOINT in b["endpoint"].why


def test_the_reference_of_kubeadms_refusal():
    """The words are kubeadm 1.37.2's (cmd/kubeadm/app/cmd/phases/join/preflight.go), read
    from the Kubernetes module the lab builds from, when it is in the module cache."""
    src = Path("/root/go/pkg/mod/k8s.io/kubernetes@v1.37.2/cmd/kubeadm/app/cmd/phases/join/"
               "preflight.go")
    if not src.exists():
        pytest.skip(f"{src} not in the Go module cache")
    assert endpoint.NO_ENDPOINT in src.read_text()


def test_without_kubeadm_config_the_admin_confs_name_it():
    out = run(state=ApiState(endpoint="x"))
    assert bad(out) == {}
    assert "admin.conf" in next(x for x in out if x.subject == "endpoint").observed


def test_the_load_balancer_host_is_never_taken_for_the_endpoint():
    """Without admin.conf and kubespray's loadbalancer_apiserver, controlplane.endpoint says
    it does not know (before, it guessed the LB host's address and 6443)."""
    from kubeaccept.model.roles import LB
    lb = host("lb1", "198.18.0.2", (LB,))
    inv = Inventory(source="t", hosts=(lb, *CPS), cluster_vars={})
    assert controlplane.endpoint(on_cluster(inventory=inv, facts={})) is None
    assert controlplane.endpoint(on_cluster(inventory=inv, facts=healthy_facts())) == (VIP, 6443)


def test_an_unreachable_worker_is_left_to_its_own_tests():
    """As cluster_control_plane: an unreachable control plane is not judged (unjudged
    finding), an unreachable worker is left out (its per-host tests error)."""
    out = run(f=healthy_facts(w1="connection refused"))
    assert bad(out) == {} and not any(x.subject.startswith("w1:") for x in out)
    out = run(f=healthy_facts(cp2="connection refused"))
    assert {x.subject for x in out if not x.ok} == {"cp2:kubeconfigs"}
