"""What the faults do on a host: the actions, their constants and field report 02's strings."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .. import cluster, pki
from ..hosts import HostRuntime
from ..plan import VIP
from ..system import LabError, run

# Field report 02's strings, as the kubelet and the runtime put them.
PLEG = ("PLEG is not healthy: pleg was last seen active 3m11.707539232s ago; "
        "threshold is 3m0s")
OCI = ('OCI runtime create failed: container_linux.go:348: starting container process '
       'caused "process_linux.go:402: container init caused \\"\\"": unknown')
DEADLINE = ("error determining status: rpc error: code = DeadlineExceeded desc = context "
            "deadline exceeded")

MALFORMED_DAEMON_JSON = """\
{
  "exec-opts": ["native.cgroupdriver=systemd"],
  "log-driver": "json-file"
  "storage-driver": "overlay2"
}
"""




# the hung `ss` of command-hangs: a script in the host's /run (a tmpfs of its own)
HANG = "/run/kubeaccept-hang-ss"
HANG_SECONDS = 987653
# sudo-password's user: logs in with the lab's key (sshd's one AuthorizedKeysFile)
SUDO_USER, SUDO_PASSWORD = "kubeaccept-ops", "lab-sudo-pw"


def _sh(script: str) -> Callable[[HostRuntime], None]:
    return lambda rt: rt.sh(script) and None


def _swap_on(rt: HostRuntime) -> None:
    swapfile = rt.state_dir / "swapfile"
    run("dd", "if=/dev/zero", f"of={swapfile}", "bs=1M", "count=16", "status=none")
    swapfile.chmod(0o600)
    run("mkswap", str(swapfile))
    run("swapon", str(swapfile))


def _host_pki(rt: HostRuntime, name: str) -> pki.Pair:
    base = rt.dir / "files" / pki.PKI.lstrip("/")
    cert = x509.load_pem_x509_certificate((base / f"{name}.crt").read_bytes())
    key = serialization.load_pem_private_key((base / f"{name}.key").read_bytes(), None)
    return pki.Pair(cert, key)


def _expiring_apiserver_cert(rt: HostRuntime) -> None:
    """Re-issue apiserver.crt from the cluster CA, valid for 10 more days."""
    old = _host_pki(rt, "apiserver").cert
    sans = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    pair = pki.issue("kube-apiserver", _host_pki(rt, "ca"), usages=[pki.SERVER], days=10,
                     dns=sans.get_values_for_type(x509.DNSName),
                     ips=[str(i) for i in sans.get_values_for_type(x509.IPAddress)])
    cert, key = pair.pem()
    rt.write(f"{pki.PKI}/apiserver.crt", cert)
    rt.write(f"{pki.PKI}/apiserver.key", key, 0o600)


def _apiserver_cert_without_endpoint(rt: HostRuntime) -> None:
    """apiserver.crt re-issued from the cluster CA with the SANs kubeadm gives it when the
    endpoint was not in the configuration (the VIP left out: an endpoint added later without
    `kubeadm init phase certs apiserver`). The file is the evidence; the apiserver keeps
    serving its old certificate (as cert-expiring), so the lab's API stays up."""
    old = _host_pki(rt, "apiserver").cert
    sans = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    pair = pki.issue("kube-apiserver", _host_pki(rt, "ca"), usages=[pki.SERVER],
                     dns=sans.get_values_for_type(x509.DNSName),
                     ips=[str(i) for i in sans.get_values_for_type(x509.IPAddress)
                          if str(i) != VIP])
    cert, key = pair.pem()
    rt.write(f"{pki.PKI}/apiserver.crt", cert)
    rt.write(f"{pki.PKI}/apiserver.key", key, 0o600)


def _kubelet_conf_pinned(address: str) -> Callable[[HostRuntime], None]:
    """kubelet.conf's server one control plane's address instead of the endpoint (a node
    joined to cp1 directly, before the load balancer existed)."""
    def action(rt: HostRuntime) -> None:
        rt.sh(f"sed -i 's#^\\( *server: \\).*#\\1https://{address}:6443#' "
              "/etc/kubernetes/kubelet.conf")
    return action


def _other_ca(rt: HostRuntime) -> None:
    """This control plane's Kubernetes PKI from a CA of its own (a botched join); etcd's PKI
    stays, so etcd keeps its quorum. The apiserver, controller-manager and scheduler are
    restarted to serve and use the new certificates."""
    cas = pki.ClusterCAs.new()
    files = pki.control_plane_files(cas, rt.host.name, rt.host.ip, VIP)
    files["/var/lib/kubelet/pki/kubelet-client-current.pem"] = pki.kubelet_client_pem(
        cas, rt.host.name)
    for path, data in files.items():
        if "/pki/etcd/" not in path and "etcd-client" not in path:
            rt.write(path, data, 0o600 if path.endswith((".key", ".conf", ".pem")) else 0o644)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        if name in rt.components:
            rt.stop(name)
            rt.start(name, rt.components[name], restart=True)


def _rogue_etcd_peer_cert(rt: HostRuntime) -> None:
    """etcd's peer certificate from a CA nobody else trusts; etcd restarted to load it."""
    pair = pki.issue(rt.host.name, pki.issue("rogue-etcd-ca", ca=True),
                     usages=[pki.SERVER, pki.CLIENT], dns=[rt.host.name, "localhost"],
                     ips=[rt.host.ip, "127.0.0.1"])
    cert, key = pair.pem()
    rt.write(f"{pki.PKI}/etcd/peer.crt", cert)
    rt.write(f"{pki.PKI}/etcd/peer.key", key, 0o600)
    rt.stop("etcd")
    rt.start("etcd", rt.components["etcd"], restart=True)


def _drop_backend(server: str) -> Callable[[HostRuntime], None]:
    def action(rt: HostRuntime) -> None:
        rt.sh(f"sed -i '/^    server {server} /d' /etc/haproxy/haproxy.cfg")
        rt.stop("haproxy")
        rt.start("haproxy", ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"])
    return action


def _kube(rt: HostRuntime) -> cluster.Kube:
    return cluster.Kube(rt.state_dir / "admin.conf")


def _ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _event(name: str, ns: str, kind: str, obj: str, reason: str, message: str, count: int,
           first_days: float, etype: str = "Normal", component: str = "kubelet") -> dict:
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"lab/fault": "yes"}},
            "involvedObject": {"kind": kind, "name": obj, "namespace": ns if kind == "Pod"
                               else None, "apiVersion": "v1"},
            "reason": reason, "message": message, "count": count, "type": etype,
            "firstTimestamp": _ago(first_days * 86400), "lastTimestamp": _ago(90),
            "source": {"component": component}}


def _pleg(rt: HostRuntime) -> None:
    """The node's kubelet reports PLEG unhealthy (its heartbeat, the Lease, goes on)."""
    kube, name = _kube(rt), rt.host.name
    kube.patch(f"/api/v1/nodes/{name}",
               {"metadata": {"annotations": {cluster.LAB_STATUS: "lab"}}})
    node = kube.call("GET", f"/api/v1/nodes/{name}")
    conds = [c for c in node["status"]["conditions"] if c["type"] != "Ready"]
    conds.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                  "message": PLEG, "lastHeartbeatTime": _ago(0),
                  "lastTransitionTime": _ago(200)})
    kube.patch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": conds}})


# As the kubelet v1.37.2 words DiskPressure (pkg/kubelet/nodestatus/setters.go) and
# node-problem-detector its KernelDeadlock (config/kernel-monitor.json: reason DockerHung on
# "task docker:\w+ blocked for more than \w+ seconds.").
DISK_PRESSURE = {"type": "DiskPressure", "status": "True", "reason": "KubeletHasDiskPressure",
                 "message": "kubelet has disk pressure"}
KERNEL_DEADLOCK = {"type": "KernelDeadlock", "status": "True", "reason": "DockerHung",
                   "message": "task docker:7 blocked for more than 120 seconds."}


def _pressure(rt: HostRuntime) -> None:
    """The node's kubelet reports DiskPressure and node-problem-detector a KernelDeadlock;
    Ready stays True. The real controller-manager then taints it disk-pressure:NoSchedule."""
    kube, name = _kube(rt), rt.host.name
    kube.patch(f"/api/v1/nodes/{name}",
               {"metadata": {"annotations": {cluster.LAB_STATUS: "lab"}}})
    node = kube.call("GET", f"/api/v1/nodes/{name}")
    conds = [c for c in node["status"]["conditions"]
             if c["type"] not in ("DiskPressure", "KernelDeadlock")]
    for c in (DISK_PRESSURE, KERNEL_DEADLOCK):
        conds.append({**c, "lastHeartbeatTime": _ago(0), "lastTransitionTime": _ago(420)})
    for c in conds:
        if c["type"] == "Ready":
            c["lastHeartbeatTime"] = _ago(0)
    kube.patch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": conds}})
    deadline = time.monotonic() + 30  # the controller's taint, as a cluster operator sees it
    while time.monotonic() < deadline:
        taints = kube.call("GET", f"/api/v1/nodes/{name}").get("spec", {}).get("taints") or []
        if any(t.get("key") == "node.kubernetes.io/disk-pressure" for t in taints):
            return
        time.sleep(0.5)
    raise LabError(f"kube-controller-manager did not taint {name} disk-pressure in 30 s")


def _cordon(rt: HostRuntime) -> None:
    """kubectl cordon: spec.unschedulable; the controller-manager adds the unschedulable taint."""
    kube, name = _kube(rt), rt.host.name
    kube.patch(f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        taints = kube.call("GET", f"/api/v1/nodes/{name}").get("spec", {}).get("taints") or []
        if any(t.get("key") == "node.kubernetes.io/unschedulable" for t in taints):
            return
        time.sleep(0.5)
    raise LabError(f"kube-controller-manager did not taint {name} unschedulable in 30 s")


# The stub resolv.conf systemd-resolved 252.39 writes (Debian 12's package, its template as the
# binary holds it: selftests/unit/fixtures/dns/systemd-resolved-252.39-stub-resolv.conf), as
# /etc/resolv.conf is where systemd-resolved is the resolver.
STUB_RESOLV = """\
# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
# Do not edit.
nameserver 127.0.0.53
options edns0 trust-ad
"""


def _resolv_stub(rt: HostRuntime) -> None:
    rt.sh("cp /etc/resolv.conf /etc/resolv.conf.kubeaccept-lab && cat > /etc/resolv.conf "
          f"<<'EOF'\n{STUB_RESOLV}EOF")


def _coredns_forward_itself(rt: HostRuntime) -> None:
    """A stub zone sent to the cluster DNS Service: CoreDNS forwards it to itself."""
    kube = _kube(rt)
    cm = kube.call("GET", "/api/v1/namespaces/kube-system/configmaps/coredns")
    corefile = cm["data"]["Corefile"] + "corp.example:53 {\n    forward . 10.96.0.10\n}\n"
    kube.patch("/api/v1/namespaces/kube-system/configmaps/coredns",
               {"data": {"Corefile": corefile}})


def _flapping(rt: HostRuntime) -> None:
    kube, name = _kube(rt), rt.host.name
    kube.create(_event(f"{name}.kubeaccept-ready", "default", "Node", name, "NodeReady",
                       f"Node {name} status is now: NodeReady", 8929, 45))
    kube.create(_event(f"{name}.kubeaccept-notready", "default", "Node", name,
                       "NodeNotReady", f"Node {name} status is now: NodeNotReady", 8932, 24,
                       component="node-controller"))


# What a crash-looping join container or a chatty entrypoint leaves in its termination
# message: the kubeadm join line (token, certificate key), a key it printed, a password.
SECRET_TOKEN = "8q2kbn.c4d1ey7rbcx3jz7v"
SECRET_CERT_KEY = "3f0e8d9e4a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"
SECRET_KEY_BODY = "MHcCAQEEIPlantedKeyBodyNotARealKeyAAAAAAAAAAAAAAAAAAAAAAoAoGCCqGSM49"
SECRET_PASSWORD = "Pl4nted-Passw0rd"
LEAKY = (f"kubeadm join 198.18.0.100:6443 --token {SECRET_TOKEN} --discovery-token-ca-cert-"
         "hash sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0 "
         f"--control-plane --certificate-key {SECRET_CERT_KEY}\nerror: "
         f"-----BEGIN EC PRIVATE KEY-----\n{SECRET_KEY_BODY}\n-----END EC PRIVATE KEY-----\n"
         f"ansible_become_password={SECRET_PASSWORD}")
SECRETS = (SECRET_TOKEN.split(".")[1], SECRET_CERT_KEY, SECRET_KEY_BODY, SECRET_PASSWORD)


def _crashloop(rt: HostRuntime, message: str = OCI) -> None:
    """The node's fluentd pod as field report 02 found it, and its events."""
    kube, node = _kube(rt), rt.host.name
    pods = [p for p in kube.items("/api/v1/namespaces/kube-system/pods?labelSelector="
                                  "k8s-app%3Dfluentd") if p["spec"].get("nodeName") == node]
    if not pods:
        raise LabError(f"no fluentd pod on {node}")
    pod = pods[0]["metadata"]["name"]
    path = f"/api/v1/namespaces/kube-system/pods/{pod}"
    kube.patch(path, {"metadata": {"annotations": {cluster.LAB_STATUS: "lab"}}})
    st = kube.call("GET", path)["status"]
    cs = st["containerStatuses"][0]
    cs.update({"ready": False, "started": False, "restartCount": 2981,
               "state": {"waiting": {"reason": "CrashLoopBackOff", "message":
                                     f"back-off 5m0s restarting failed container=fluentd "
                                     f"pod={pod}_kube-system"}},
               "lastState": {"terminated": {"reason": "ContainerCannotRun", "exitCode": 128,
                                            "message": message, "startedAt": _ago(400),
                                            "finishedAt": _ago(400)}}})
    conds = [c for c in st["conditions"] if c["type"] not in ("Ready", "ContainersReady")]
    conds += [{"type": t, "status": "False", "reason": "ContainersNotReady",
               "lastTransitionTime": _ago(400)} for t in ("Ready", "ContainersReady")]
    kube.patch(f"{path}/status", {"status": {"containerStatuses": [cs], "conditions": conds}})
    kube.create(_event(f"{pod}.kubeaccept-failedsync", "kube-system", "Pod", pod, "FailedSync",
                       DEADLINE, 123314, 23, "Warning"))
    cluster.wait_for("the fluentd DaemonSet to count the crash-looping pod", lambda: (
        (kube.call("GET", "/apis/apps/v1/namespaces/kube-system/daemonsets/fluentd")
         or {}).get("status", {}).get("numberUnavailable")), 30)


def _coredns_down(rt: HostRuntime) -> None:
    for key in [k for k in rt.state if k.startswith("pod:coredns")]:
        rt.stop(key)


WRONG_RECORD = """    hosts {
       10.96.0.99 kubernetes.default.svc.cluster.local
       fallthrough
    }
"""


def _coredns_wrong(rt: HostRuntime) -> None:
    kube = _kube(rt)
    text = cluster.COREFILE.replace("    kubernetes cluster.local",
                                    WRONG_RECORD + "    kubernetes cluster.local", 1)
    kube.patch("/api/v1/namespaces/kube-system/configmaps/coredns",
               {"data": {"Corefile": text}})


def _flannel_network(rt: HostRuntime) -> None:
    _kube(rt).patch("/api/v1/namespaces/kube-flannel/configmaps/kube-flannel-cfg",
                    {"data": {"net-conf.json": cluster.net_conf("10.245.0.0/16")}})


def _calico_loose(rt: HostRuntime) -> None:
    """rp_filter=2 on a node of a Calico cluster told to accept it (report 01's way out)."""
    _calico_with_loose_rpf(rt, cluster.calico_node())


def _calico_311_loose(rt: HostRuntime) -> None:
    """rp_filter=2 where calico-node v3.11.3 runs, as in field report 01."""
    _calico_with_loose_rpf(rt, cluster.calico_node("docker.io/calico/node:v3.11.3", False))


def _calico_with_loose_rpf(rt: HostRuntime, ds: dict) -> None:
    rt.sh("sysctl -qw net.ipv4.conf.all.rp_filter=2")
    kube = _kube(rt)
    kube.create(ds)
    cluster.wait_for("calico-node to be ready", lambda: (lambda st: st.get(
        "desiredNumberScheduled") and st.get("numberReady") == st["desiredNumberScheduled"])(
        (kube.get(ds) or {}).get("status", {})), 60)


# What `systemctl enable` of this unit leaves: a swap.target.wants symlink (systemd.swap(5)).
SWAP_UNIT = """[Unit]
Description=Extra swap

[Swap]
What=/var/lib/swap2.img

[Install]
WantedBy=swap.target
"""

ETCD_PKI = "/etc/kubernetes/pki/etcd"


def _etcdctl(rt: HostRuntime, endpoint: str, args: str) -> str:
    return rt.sh(f"etcdctl --endpoints=https://{endpoint}:2379 --cacert={ETCD_PKI}/ca.crt "
                 f"--cert={ETCD_PKI}/healthcheck-client.crt "
                 f"--key={ETCD_PKI}/healthcheck-client.key --command-timeout=10s {args}")


def _other_member(rt: HostRuntime) -> str:
    """The address of another control plane (lab.json holds the hosts)."""
    hosts = json.loads((rt.state_dir / "lab.json").read_text())["hosts"]
    return next(h["ip"] for h in hosts if "control_plane" in h["roles"]
                and h["name"] != rt.host.name)


def _remove_member(rt: HostRuntime) -> None:
    """`etcdctl member remove` of this control plane's member: a 2-member etcd, where the
    loss of either member is the loss of quorum."""
    other = _other_member(rt)
    members = json.loads(_etcdctl(rt, other, "member list -w json"))["members"]
    mine = next(m["ID"] for m in members if m.get("name") == rt.host.name)
    _etcdctl(rt, other, f"member remove {mine:x}")
    rt.stop("etcd")
    rt.sh("rm -rf /var/lib/etcd")


def _add_member_back(rt: HostRuntime) -> None:
    """`etcdctl member add` with an empty data dir: the member joins again when `heal` starts
    etcd (with --initial-cluster-state=existing)."""
    other = _other_member(rt)
    members = json.loads(_etcdctl(rt, other, "member list -w json"))["members"]
    peer = f"https://{rt.host.ip}:2380"
    if not any(peer in m.get("peerURLs", []) for m in members):
        rt.stop("etcd")
        rt.sh("rm -rf /var/lib/etcd")
        _etcdctl(rt, other, f"member add {rt.host.name} --peer-urls={peer}")


def _as_learner(rt: HostRuntime) -> None:
    """This control plane's member removed and added back as a learner (`etcdctl member add
    --learner`, as kubeadm's join does before it promotes), started again empty: the join
    that stopped before `member promote`."""
    other = _other_member(rt)
    members = json.loads(_etcdctl(rt, other, "member list -w json"))["members"]
    mine = next(m["ID"] for m in members if m.get("name") == rt.host.name)
    _etcdctl(rt, other, f"member remove {mine:x}")
    rt.stop("etcd")
    rt.sh("rm -rf /var/lib/etcd")
    _etcdctl(rt, other, f"member add {rt.host.name} --learner "
             f"--peer-urls=https://{rt.host.ip}:2380")
    rt.start_services()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # started: etcd names the member once it joined
        members = json.loads(_etcdctl(rt, other, "member list -w json"))["members"]
        if any(m.get("name") == rt.host.name and m.get("isLearner") for m in members):
            rt.wait_ready(30)  # and listening again on every port it had (2379, 2380)
            _wait_lb_leaves_out(rt.host.name)
            return
        time.sleep(0.5)
    raise LabError(f"the learner on {rt.host.name} did not start within 30 s")


def _wait_lb_leaves_out(name: str, timeout: float = 30) -> None:
    """Until HAProxy's /readyz health checks have taken the broken apiserver out: the steady
    state of a learner left behind (its apiserver answers 500 until then). Six answers in a
    row through the VIP are 200 once round robin no longer picks it."""
    from kubeaccept.api import apiprobe  # the lab may use the product, never the reverse
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 6:
        if time.monotonic() > deadline:
            raise LabError(f"HAProxy still sends to {name}'s failing apiserver after "
                           f"{timeout:g} s")
        ok = apiprobe.get(f"https://{VIP}:6443/readyz", None, 2).status == 200
        streak = streak + 1 if ok else 0
        time.sleep(0 if ok else 0.5)


def _promote(rt: HostRuntime) -> None:
    """heal: `etcdctl member promote` once the learner has caught up (etcd refuses before)."""
    other = _other_member(rt)
    deadline = time.monotonic() + 30
    while True:
        members = json.loads(_etcdctl(rt, other, "member list -w json"))["members"]
        learner = next((m for m in members if m.get("isLearner")
                        and f"https://{rt.host.ip}:2380" in m.get("peerURLs", [])), None)
        if learner is None:
            return
        try:
            _etcdctl(rt, other, f"member promote {learner['ID']:x}")
            return
        except LabError:  # etcd refuses to promote a learner that has not caught up yet
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _no_health_checks(rt: HostRuntime) -> None:
    """HAProxy sending to every server whatever its /readyz says (no `check`)."""
    rt.sh("sed -i 's/ check check-ssl verify none inter [^ ]* fall [0-9]* rise [0-9]*$//' "
          "/etc/haproxy/haproxy.cfg")
    rt.stop("haproxy")
    rt.start("haproxy", ["haproxy", "-db", "-f", "/etc/haproxy/haproxy.cfg"])


def _coredns_on(node: str) -> Callable[[HostRuntime], None]:
    """Both CoreDNS replicas scheduled onto `node` (a rollout of the Deployment)."""
    def action(rt: HostRuntime) -> None:
        kube = _kube(rt)
        kube.patch("/apis/apps/v1/namespaces/kube-system/deployments/coredns", {"spec": {
            "template": {"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}}}})

        def moved():
            pods = kube.items(cluster.COREDNS_PODS)
            return len(pods) == 2 and all(
                p["spec"].get("nodeName") == node and cluster.ready(p)
                and p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")
                for p in pods)
        cluster.wait_for(f"both CoreDNS pods to run on {node}", moved, 120)
    return action


# Debian's /etc/nftables.conf with the forward chain closed, as an administrator hardening a
# host writes it: no iptables rule involved.
NFT_FORWARD_DROP = """table inet filter {
	chain input {
		type filter hook input priority filter;
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
	chain output {
		type filter hook output priority filter;
	}
}
"""
NFT_INPUT_DROP = """table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 10250 drop
	}
}
"""
NFT_FORWARD_WORDS = ("DROP by the policy of chain inet filter forward",
                     "nft insert rule inet filter forward ip saddr 10.244.0.0/16 accept")


API_COLLATERAL = ("cluster_nodes_ready", "cluster_nodes_not_flapping", "cluster_pods_healthy",
                  "cluster_daemonsets", "cluster_pod_network", "cluster_dns",
                  "cluster_kubeadm_certs")
