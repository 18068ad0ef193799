"""nftables' own tables, from `nft -j list ruleset` as nft 1.0.6 (Debian 12) prints it: the
fixtures' .json were made by loading the .nft beside them into a throwaway network namespace
(`unshare -n sh -c 'nft -f X.nft && nft -j list ruleset'`). Reference behaviour (nft(8), "BASE
CHAINS"): every base chain at a hook sees the packet in priority order; accept ends only that
chain, drop/reject anywhere is final; a chain without a verdict applies its policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeaccept.facts import nftables
from kubeaccept.facts.iptables import Packet

from .factory import context, facts, host, judge

FIX = Path(__file__).parent / "fixtures" / "nft"
FWD = Packet("udp", "10.244.1.2", "10.244.0.2", 53, "flannel.1", "cni0")


def rs(name: str) -> nftables.NftRuleset:
    return nftables.parse((FIX / f"{name}.json").read_text())


def test_debian_default_accepts_everything():
    v = nftables.evaluate(rs("debian-default"), "forward", FWD)
    assert v.action == "ACCEPT" and v.decided_by == "policy"


def test_forward_policy_drop_of_an_inet_table():
    v = nftables.evaluate(rs("debian-forward-drop"), "forward", FWD)
    assert (v.action, v.chain, v.decided_by) == ("DROP", "inet filter forward", "policy")
    assert v.describe() == "DROP by the policy of chain inet filter forward"


def test_interface_sets_and_wildcards_with_real_names():
    """iifname/oifname sets and `cali*` wildcards match the CNI's real interfaces."""
    r = rs("input-drops-kubelet")
    assert nftables.evaluate(r, "forward", FWD).action == "ACCEPT"
    calico = Packet("udp", "10.244.1.2", "10.244.0.2", 53, "vxlan.calico", "cali1a2b3c4d5e6")
    v = nftables.evaluate(r, "forward", calico)
    assert v.action == "ACCEPT" and "cali*" in v.rule.text
    other = Packet("tcp", "10.244.1.2", "10.244.0.2", 80, "eth1", "eth2")
    assert nftables.evaluate(r, "forward", other).action == "DROP"


def test_input_drop_by_handle_and_named_sets():
    r = rs("input-drops-kubelet")
    v = nftables.evaluate(r, "input", Packet("tcp", "198.18.0.11", "198.18.1.1", 10250, "eth0"))
    assert v.action == "DROP" and v.unit == "handle"
    assert v.describe().startswith("DROP by inet host input handle ")
    assert "tcp dport 10250" in v.rule.text
    vx = nftables.evaluate(r, "input", Packet("udp", "198.18.0.11", "198.18.1.1", 8472, "eth0"))
    assert vx.action == "ACCEPT" and "@cluster_nodes" in vx.rule.text


def test_firewalld_nftables_backend_rejects_pod_traffic_of_no_zone():
    """firewalld 1.x: filter_FORWARD ends in `reject with icmpx admin-prohibited`; traffic
    of no zone's source or interface falls into the default zone (public), which only lets
    it out of eth0."""
    v = nftables.evaluate(rs("firewalld-nftables"), "forward",
                          Packet("udp", "10.245.1.2", "10.245.0.2", 53, "flannel.1", "cni0"))
    assert v.action == "REJECT" and v.chain == "inet firewalld filter_FORWARD"
    assert "reject" in v.rule.text


def test_firewalld_zone_chosen_by_source():
    """A zone bound to the pod subnet by `sources:` (trusted) accepts it."""
    v = nftables.evaluate(rs("firewalld-nftables"), "forward", FWD)
    assert v.action == "ACCEPT" and any("filter_FWD_trusted" in p for p in v.path)


def test_firewalld_ports_opened_in_the_zone():
    r = rs("firewalld-nftables")
    ok = nftables.evaluate(r, "input", Packet("tcp", "198.18.0.11", "198.18.1.1", 10250, "eth0"))
    closed = nftables.evaluate(r, "input", Packet("tcp", "198.18.0.11", "198.18.1.1", 2379,
                                                  "eth0"))
    assert ok.action == "ACCEPT" and closed.action == "REJECT"


def test_iptables_nft_tables_are_left_to_iptables_save():
    r = nftables.parse('{"nftables": [{"chain": {"family": "ip", "table": "filter", '
                       '"name": "FORWARD", "hook": "forward", "prio": 0, "policy": "drop"}}]}')
    assert nftables.evaluate(r, "forward", FWD) is None
    got = nftables.evaluate(r, "forward", FWD, frozenset({"filter"}))
    assert got.action == "DROP"


def _nft_facts(name: str, iptables: str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
               ":OUTPUT ACCEPT [0:0]\nCOMMIT\n!exit 0"):
    body = (FIX / f"{name}.json").read_text() + "\n!exit 0"
    return facts("n1", sections={
        "nft": body, "iptables-save": iptables,
        "links": "1: lo: <LOOPBACK>\n4: flannel.1: <UP>\n5: cni0: <UP>",
        "addresses": "2: eth0    inet 198.18.1.1/16 brd 198.18.255.255 scope global eth0"})


def test_node_firewall_forward_fails_on_an_nft_only_drop():
    out = judge("node_firewall_forward", node=context(_nft_facts("debian-forward-drop")))
    bad = [f for f in out if not f.ok]
    assert len(bad) == 3
    assert "DROP by the policy of chain inet filter forward" in bad[0].observed
    assert "nft insert rule inet filter forward ip saddr 10.244.0.0/16 accept" in bad[0].fix
    assert bad[0].evidence[0].startswith("nft -j list ruleset: ")


def test_node_firewall_input_fails_on_an_nft_only_drop():
    peer = host("cp1", "198.18.0.11", roles=("control_plane",))
    me = host("n1", "198.18.1.1")
    ctx = context(_nft_facts("input-drops-kubelet"), me, peers=[(peer, facts("cp1"))])
    out = judge("node_firewall_input", node=ctx)
    bad = [f for f in out if not f.ok]
    assert [f.subject for f in bad] == ["n1:tcp/10250"]
    assert "DROP by inet host input handle" in bad[0].observed
    assert "nft delete rule inet host input handle" in bad[0].fix


def _save(name: str) -> str:
    return (FIX / name).read_text()


# iptables-nft 1.8.7 (Debian 11), 1.8.9 (this machine's, Debian 12) and 1.8.11 (Debian 13)
# over a `table ip filter` that nft 1.0.6 made with a set lookup and a reject in FORWARD, in
# a private network namespace: what iptables-save printed (fixtures/nft/incompatible-filter.
# iptables-save-VERSION, README.md) and nft -j list ruleset.
RUN_VERSIONS = ["1.8.7", "1.8.9", "1.8.11"]


@pytest.mark.parametrize("version", RUN_VERSIONS)
def test_incompatible_table_is_unknown_not_open(version):
    """Without nft's own answer, a table iptables-nft-save cannot show is undecided, quoted
    as iptables printed it (xtables-save.c __do_output: printf("# Table `%s' is
    incompatible, use 'nft' tool.\\n"), exit 0), never "nothing filters"."""
    save = _save(f"incompatible-filter.iptables-save-{version}")
    assert save.startswith("# Table `filter' is incompatible, use 'nft' tool.\n!exit 0")
    f = facts("n1", sections={"iptables-save": save})
    out = judge("node_firewall_forward", node=context(f))
    assert [x.ok for x in out] == [False]
    assert ("iptables-save printed \"# Table `filter' is incompatible, use 'nft' tool.\": "
            "table ip filter exists but its rules could not be read") in out[0].observed
    assert "nft list table ip filter" in out[0].observed
    assert "nothing filters" not in out[0].observed


@pytest.mark.parametrize("version", RUN_VERSIONS)
def test_incompatible_table_is_judged_from_nfts_ruleset(version):
    """nft(8): every base chain on the hook filters the packet; the incompatible table's
    FORWARD rejects pod traffic to 10.244.0.0/16 (nft's rule, handle 4)."""
    save = _save(f"incompatible-filter.iptables-save-{version}")
    out = judge("node_firewall_forward", node=context(_nft_facts("incompatible-filter", save)))
    bad = [f for f in out if not f.ok]
    assert bad and all("REJECT by ip filter FORWARD handle" in f.observed for f in bad), out
    assert all("nothing filters" not in f.observed for f in out)


def test_fixture_sources_are_the_nft_files():
    for json_file in FIX.glob("*.json"):
        assert json_file.with_suffix(".nft").exists()


# Real iptables-nft-save outputs of Debian's iptables 1.8.7 (bullseye), 1.8.9 (bookworm) and
# 1.8.11 (trixie), each run in a private network namespace over the same rules (fixtures/nft/
# README.md): a table iptables made, then a base chain `extra` added by nft 1.0.6 that drops
# pod traffic; and a set match nft added to the iptables-made FORWARD.


@pytest.mark.parametrize("version", ["1.8.9", "1.8.11"])
def test_a_base_chain_iptables_does_not_show_is_judged_from_nft(version):
    """1.8.9+: "# Table `filter' contains incompatible base-chains, use 'nft' tool to list
    them." on stdout, exit 0, the FORWARD it made shown, `extra` left out; nft(8): every base
    chain on the hook filters the packet, so `extra`'s drop is the verdict."""
    save = _save(f"foreign-base-chain.iptables-save-{version}")
    assert "# Table `filter' contains incompatible base-chains, use 'nft' tool to list them." \
        in save
    out = judge("node_firewall_forward", node=context(_nft_facts("foreign-base-chain", save)))
    bad = [f for f in out if not f.ok]
    assert bad and all("DROP by ip filter extra handle" in f.observed for f in bad), out
    # without nft's answer: unknown, saying why, never a pass
    f = facts("n1", sections={"iptables-save": save})
    (only,) = judge("node_firewall_forward", node=context(f))
    assert not only.ok and "has base chains iptables does not show, and they filter too" in \
        only.observed and "nft list table ip filter" in only.observed


@pytest.mark.parametrize("version", ["1.8.4", "1.8.5"])
def test_before_1_8_7_a_foreign_base_chain_hides_the_whole_table(version):
    """iptables 1.8.4/1.8.5 (Ubuntu 20.04, EL 8) check every chain of the table
    (nft.c nft_is_chain_compatible: a chain with a hook whose name is no built-in chain's
    makes the table incompatible) and print only xtables-save.c's "# Table `%s' is
    incompatible, use 'nft' tool." (fixture built from that format string, not run:
    fixtures/nft/README.md). The whole table is then judged from nft: `extra` drops."""
    save = _save(f"foreign-base-chain.iptables-save-{version}")
    assert save == "# Table `filter' is incompatible, use 'nft' tool.\n!exit 0\n"
    out = judge("node_firewall_forward", node=context(_nft_facts("foreign-base-chain", save)))
    bad = [f for f in out if not f.ok]
    assert bad and all("DROP by ip filter extra handle" in f.observed for f in bad), out
    # nft's FORWARD accepts the same packets first; the verdict is extra's, not "open"
    assert all("nothing filters" not in f.observed for f in out)


def test_iptables_1_8_7_crashing_on_that_table_is_judged_from_nft():
    """1.8.7 aborts on it (nft-cache.c frees the unrecognised base chain twice, fixed by
    "nft: cache: Avoid double free of unrecognized base-chains" in 1.8.8): glibc prints
    "free(): double free detected in tcache 2", nothing reaches stdout, and dash, the
    node's sh, adds its own "Aborted" line into the 2>&1 (exit 134). Every iptables table
    is then read from nft; without nft the finding quotes iptables' words, not the shell's."""
    save = _save("foreign-base-chain.iptables-save-1.8.7")
    assert save.splitlines()[-2:] == ["Aborted", "!exit 134"]
    out = judge("node_firewall_forward", node=context(_nft_facts("foreign-base-chain", save)))
    bad = [f for f in out if not f.ok]
    assert bad and all("DROP by ip filter extra handle" in f.observed for f in bad), out
    f = facts("n1", sections={"iptables-save": save})
    (only,) = judge("node_firewall_forward", node=context(f))
    assert not only.ok and ("iptables-save failed (exit status 134, killed by SIGABRT): "
                            "free(): double free detected in tcache 2") in only.observed


@pytest.mark.parametrize("version", RUN_VERSIONS)
def test_a_set_match_iptables_prints_as_a_bare_drop_is_read_from_nft(version):
    """iptables-nft-save prints nft's `ip saddr @blocked drop` as `-A FORWARD -j DROP`
    (nft-shared.c / nft-ruleparse.c nft_parse_lookup: only the bridge family parses a set
    lookup): taken as is, every pod packet would be dropped. nft's own rule matches only the
    (empty) set: pod traffic is accepted by the rule iptables made before it."""
    save = _save(f"set-lookup.iptables-save-{version}")
    assert "-A FORWARD -j DROP" in save.splitlines()
    out = judge("node_firewall_forward", node=context(_nft_facts("set-lookup", save)))
    assert out and all(f.ok for f in out), [f.observed for f in out if not f.ok]
    assert all("ACCEPT by ip filter FORWARD handle" in f.observed for f in out)


def test_the_fix_follows_the_error():
    """A crash or a table iptables cannot show wants nft, not root."""
    crash = facts("n1", sections={"iptables-save": _save(
        "foreign-base-chain.iptables-save-1.8.7")})
    (f,) = judge("node_firewall_forward", node=context(crash))
    assert "install nftables' nft on n1" in f.fix and "root" not in f.fix


@pytest.mark.parametrize("version", RUN_VERSIONS)
def test_not_root_wants_root(version):
    """iptables-nft-save run as uid 65534 (setpriv) in a private network namespace: nft-cache.c
    mnl_genid_get's "Could not fetch rule set generation id: Permission denied (you must be
    root)", exit 4 (RESOURCE_PROBLEM); up to 1.8.8 the format ends in "\\n", so a blank line
    follows it."""
    save = _save(f"not-root.iptables-save-{version}")
    assert "Could not fetch rule set generation id: Permission denied (you must be root)" in save
    denied = facts("n1", sections={"iptables-save": save})
    (f,) = judge("node_firewall_forward", node=context(denied))
    assert f.fix == "run the suite as root or with ansible_become=true"
    assert "iptables-save failed (exit status 4): iptables-" in f.observed
    assert f.observed.endswith("Permission denied (you must be root)"), f.observed
