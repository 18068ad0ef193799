"""cluster_etcd over etcdctl's JSON as gather.sh reports it."""

from __future__ import annotations

import json
from pathlib import Path

from kubeaccept.model.roles import CONTROL_PLANE

from .factory import facts, host, judge, on_cluster

CPS = [host(f"cp{i}", f"10.0.0.{i}", (CONTROL_PLANE,)) for i in (1, 2, 3)]
IDS = {1: 0x11, 2: 0x22, 3: 0x33}


def members(n=3):
    return json.dumps({"members": [{"ID": IDS[i], "name": f"cp{i}",
                                    "peerURLs": [f"https://10.0.0.{i}:2380"]}
                                   for i in range(1, n + 1)]})


def status(up=(1, 2, 3), leader=0x11, terms=None):
    return json.dumps([{"Endpoint": f"https://10.0.0.{i}:2379", "Status": {
        "header": {"member_id": IDS[i]}, "leader": leader,
        "raftTerm": (terms or {}).get(i, 5)}} for i in up])


def health(up=(1, 2, 3), down=()):
    return json.dumps([{"endpoint": f"https://10.0.0.{i}:2379", "health": True} for i in up]
                      + [{"endpoint": f"https://10.0.0.{i}:2379", "health": False,
                          "error": "context deadline exceeded"} for i in down])


def view(name, m=None, s=None, h=None, err=""):
    lines = ["!etcdctl member list", m if m is not None else members(), "!stderr member list",
             err, "!etcdctl endpoint status --cluster", s if s is not None else status(),
             "!etcdctl endpoint health --cluster", h if h is not None else health()]
    return facts(name, etcd="\n".join(lines))


def failed(findings):
    return [f for f in findings if not f.ok]


def test_healthy_cluster():
    out = judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts={h.name: view(h.name) for h in CPS}), readyz=None)
    assert not failed(out)
    assert {f.subject for f in out} == {"etcd:members", "etcd:cp1", "etcd:cp2", "etcd:cp3",
                                        "etcd:leader", "etcd:quorum"}


def test_one_member_down_keeps_quorum():
    v = {"cp1": view("cp1", s=status((1, 3)), h=health((1, 3), (2,))),
         "cp2": view("cp2", m="", s="", h="", err="context deadline exceeded"),
         "cp3": view("cp3", s=status((1, 3)), h=health((1, 3), (2,)))}
    out = failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts=v), readyz=None))
    assert [f.subject for f in out] == ["etcd:cp2"]
    assert "member cp2 (10.0.0.2:2379) unhealthy: context deadline exceeded" in out[0].observed


def test_quorum_lost_and_split_leaders():
    v = {"cp1": view("cp1", s=status((1,)), h=health((1,), (2, 3)))}
    out = {f.subject: f for f in failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts=v), readyz=None))}
    assert "quorum lost: 1 of 3 voting members healthy" in out["etcd:quorum"].observed
    v = {"cp1": view("cp1", s=status(leader=0x11, terms={3: 6}))}
    out = {f.subject: f for f in failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts=v), readyz=None))}
    assert "raft terms [5, 6]" in out["etcd:leader"].observed


def test_members_must_be_the_control_planes():
    stale = json.dumps({"members": json.loads(members())["members"] + [
        {"ID": 0x44, "name": "old-cp", "peerURLs": ["https://10.0.0.9:2380"]}]})
    out = failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts={"cp1": view("cp1", m=stale)}), readyz=None))
    assert out and "members on no control plane: old-cp (10.0.0.9)" in out[0].observed


def test_nobody_answers():
    out = failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts={h.name: view(h.name, m="", s="", h="", err="context deadline exceeded") for h in CPS}), readyz=None))
    assert len(out) == 1 and "no control plane could list the etcd members" in out[0].observed
    assert not out[0].unjudged


def test_nobody_could_be_asked_is_not_judged():
    """Every control plane unreachable over SSH: nothing was asked, so nothing is judged (the
    test errors like the hosts' own tests); the apiservers' /readyz still gives an opinion."""
    out = failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts={h.name: "unreachable: x" for h in CPS}), readyz=None))
    assert [f.subject for f in out] == ["etcd"] * 3 and all(f.unjudged == "unreachable" for f in out)
    assert out[0].observed == "cp1: unreachable: x"


def test_apiserver_readyz_is_a_second_opinion():
    from kubeaccept.api.apiprobe import Answer
    url = "https://10.0.0.2:6443/readyz?verbose"
    readyz = {url: Answer(url, 500, "[+]ping ok\n[-]etcd failed: reason withheld\n[+]log ok")}
    out = failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts={h.name: view(h.name) for h in CPS}), readyz=readyz))
    assert [f.subject for f in out] == ["etcd:api-view:cp2"]
    assert "[-]etcd failed" in out[0].observed


def test_no_etcdctl_anywhere_is_not_a_verdict_on_etcd():
    """kubeadm installs no etcdctl on the host (etcd runs as a static pod): without etcdctl
    and crictl the facts script says `!no-etcdctl`, and the test errors saying so."""
    v = {h.name: facts(h.name, etcd="!no-etcdctl") for h in CPS}
    out = failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts=v), readyz=None))
    assert out and all(f.unjudged == "missing tool" for f in out)
    assert "cp1: etcdctl is not installed (package etcd-client); cluster_etcd needs it (or " \
        "crictl" in out[0].observed


def test_no_etcdctl_on_one_node_is_fine_when_another_answers():
    v = {h.name: view(h.name) for h in CPS}
    v["cp2"] = facts("cp2", etcd="!no-etcdctl")
    assert not failed(judge("cluster_etcd", cluster=on_cluster(hosts=CPS, facts=v), readyz=None))


# etcd 3.7.3's own answers for a one-voter cluster with a learner added by `etcdctl member add
# cp4 --learner` (run here in a private network namespace: fixtures/etcd/learner-*); the
# learner's health answer is "etcdserver: rpc not supported for learner".
ETCD = Path(__file__).parent / "fixtures" / "etcd"


def learner_view(name):
    lines = ["!etcdctl member list", (ETCD / "learner-member-list.json").read_text().strip(),
             "!stderr member list", "",
             "!etcdctl endpoint status --cluster",
             (ETCD / "learner-endpoint-status.json").read_text().strip(),
             "!etcdctl endpoint health --cluster",
             (ETCD / "learner-endpoint-health.json").read_text().strip(),
             "!stderr endpoint health --cluster",
             (ETCD / "learner-endpoint-health.stderr").read_text().replace("\n", " ")]
    return facts(name, etcd="\n".join(lines))


def test_a_learner_is_named_and_not_counted_in_the_quorum():
    cps = [host("cp1", "127.0.0.1", (CONTROL_PLANE,)), host("cp4", "127.0.0.2", (CONTROL_PLANE,))]
    assert "rpc not supported for learner" in (ETCD / "learner-endpoint-health.json").read_text()
    out = judge("cluster_etcd", cluster=on_cluster(hosts=cps, facts={
        h.name: learner_view(h.name) for h in cps}), readyz=None)
    bad = {f.subject: f for f in failed(out)}
    assert set(bad) == {"etcd:cp4"}, bad
    assert bad["etcd:cp4"].observed == ('member cp4 (127.0.0.2) is a learner ("isLearner": true '
                                        "in etcdctl member list): it replicates but does not "
                                        "vote; the quorum counts the 1 voting members")
    assert "etcdctl member promote e6581c632a177362" in bad["etcd:cp4"].fix
    by = {f.subject: f for f in out}
    assert by["etcd:quorum"].observed == "1 of 1 voting members healthy"
    assert by["etcd:members"].observed == "2 members: cp1, cp4 (learner)"


def test_a_learners_own_apiserver_is_said_to_stop_on_it():
    """kubeadm's kube-apiserver reads only its own member (--etcd-servers=https://127.0.0.1:2379,
    kubeadm's manifests); a learner answers no client request (etcd 3.7.3: "rpc not supported
    for learner"), so the /readyz [-]etcd line on that control plane is the learner's doing,
    and its fix is the promotion, not certificates or ports."""
    from kubeaccept.model.apistate import Answer
    cps = [host("cp1", "127.0.0.1", (CONTROL_PLANE,)), host("cp4", "127.0.0.2", (CONTROL_PLANE,))]
    url = "https://127.0.0.2:6443/readyz?verbose"
    readyz = {url: Answer(url, 500, "[+]ping ok\n[-]etcd failed: reason withheld\n")}
    out = judge("cluster_etcd", cluster=on_cluster(hosts=cps, facts={
        h.name: learner_view(h.name) for h in cps}), readyz=readyz)
    bad = {f.subject: f for f in failed(out)}
    assert set(bad) == {"etcd:cp4", "etcd:api-view:cp4"}, bad
    view = bad["etcd:api-view:cp4"]
    assert "its own etcd member is a learner" in view.observed
    assert view.fix == "etcdctl member promote e6581c632a177362"


def test_etcdctl_errors_are_its_conclusion_not_its_log():
    """etcdctl 3.7.3 logs zap JSON records, then ends with `Error: ...` (the real stderr of
    `endpoint health --cluster` with a learner: fixtures/etcd/learner-endpoint-health.stderr)."""
    from kubeaccept.checks.etcd import etcdctl_error
    real = (ETCD / "learner-endpoint-health.stderr").read_text()
    assert etcdctl_error(real) == "Error: unhealthy cluster"
    assert etcdctl_error(real.replace("\n", " ")) == "Error: unhealthy cluster"
    record = real.splitlines()[0]
    assert etcdctl_error(record) == ("rpc error: code = FailedPrecondition desc = etcdserver: "
                                     "rpc not supported for learner")
    assert etcdctl_error("") == ""
