"""One run's view of the cluster, opened the same way for the suite and the failover gate:
the inventory, the settings, the fact store (one login and one facts command per host), the
Kubernetes API and its state, each apiserver's /readyz. Knows nothing of pytest."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeaccept.api import apiprobe, kubeapi
from kubeaccept.checks import ClusterContext, controlplane
from kubeaccept.checks.certs import CA
from kubeaccept.facts import NodeFacts
from kubeaccept.inventory.kubespray import choose_cluster_dns, choose_vxlan_port
from kubeaccept.model.hosts import Host, Inventory
from kubeaccept.model.ports import probe_sources
from kubeaccept.model.roles import CONTROL_PLANE
from kubeaccept.model.settings import Settings, parse_version
from kubeaccept.remote.factstore import FactStore


def settings_for(opt: Any, inventory: Inventory) -> Settings:
    """The run's Settings: the command line's options (attributes of `opt`, as pytest's or
    argparse's namespace has them) first, then kubespray's variables, then the defaults."""
    cv = inventory.cluster_vars
    service_subnet = opt.service_subnet or cv.get("kube_service_addresses") or "10.96.0.0/12"
    vxlan_port, vxlan_source = choose_vxlan_port(cv, opt.vxlan_port)
    dns = choose_cluster_dns(cv, service_subnet, opt.cluster_dns)
    return Settings(
        connect_timeout=opt.connect_timeout,
        command_timeout=opt.command_timeout,
        probe_timeout=opt.probe_timeout,
        probe_sources=probe_sources(opt.probe_sources, len(inventory.hosts)),
        pod_subnet=opt.pod_subnet or cv.get("kube_pods_subnet") or "10.244.0.0/16",
        service_subnet=service_subnet,
        vxlan_port=vxlan_port,
        vxlan_source=vxlan_source,
        kube_version=parse_version(opt.kube_version or cv.get("kube_version")),
        cert_expiry_days=opt.cert_expiry_days,
        restart_threshold=opt.restart_threshold,
        flap_window_minutes=opt.flap_window,
        flap_threshold=opt.flap_threshold,
        dnsutils_image=opt.dnsutils_image,
        cluster_dns_ip=dns.ip,
        dns_source=dns.source,
        node_local_dns_ip=dns.node_local_ip,
        dns_service=dns.service,
    )


def cluster_ca(facts: Iterable[NodeFacts | str]) -> bytes | None:
    """The cluster CA as read off the first control plane that has it."""
    return next((f.certificates.get(CA) for f in facts
                 if isinstance(f, NodeFacts) and f.certificates.get(CA)), None)


@dataclass
class Session:
    inventory: Inventory
    settings: Settings
    store: FactStore
    kubeconfig: str | None = None  # --kubeconfig; None: admin.conf of a control plane
    # (kubeconfig dict, where it came from), once known
    creds: tuple[dict, str] | None = None
    # (the API or why not, its state or why not), opened in the background as the run starts
    api: Future | None = field(default=None, repr=False)

    @classmethod
    def open(cls, inventory: Inventory, settings: Settings, kubeconfig: str | None = None,
             shared: Path | None = None, worker: tuple[int, int] = (0, 1),
             creds: tuple[dict, str] | None = None, broker: Path | None = None) -> Session:
        """Nothing is connected to yet: logins happen as facts are asked for. `creds`: a
        kubeconfig already read (the failover gate's, read once before it powers anything).
        `broker`: an xdist worker's commands run on the controller's logins there."""
        return cls(inventory, settings, FactStore(inventory, settings, shared, worker, broker),
                   kubeconfig, creds)

    # --- hosts ----------------------------------------------------------------------------
    def cluster(self, hosts: Iterable[Host] | None = None) -> ClusterContext:
        """Every host's facts (or why there are none), gathered in parallel."""
        hosts = list(self.inventory.hosts if hosts is None else hosts)
        self.store.prefetch(hosts)
        return ClusterContext(self.inventory, self.settings,
                              {h.name: self.store.get(h) for h in hosts})

    def readyz(self, cluster: ClusterContext) -> dict:
        """Each apiserver's and the controlPlaneEndpoint's /readyz?verbose, verified against
        the cluster CA read off a control plane."""
        return apiprobe.readyz_all(controlplane.readyz_urls(cluster),
                                   cluster_ca(cluster.facts.values()),
                                   self.settings.connect_timeout)

    # --- the Kubernetes API ---------------------------------------------------------------
    def credentials(self, skip: Iterable[str] = ()) -> tuple[dict, str]:
        """The kubeconfig and where it came from: --kubeconfig, else admin.conf read over the
        open SSH connection of a control plane (not one named in `skip`: one powered off).
        Raises kubeapi.ApiUnavailable with the one-line reason."""
        if self.creds is None:
            if self.kubeconfig:
                self.creds = kubeapi.kubeconfig_file(Path(self.kubeconfig))
            else:
                cps = [c for c in self.inventory.by_role(CONTROL_PLANE) if c.name not in skip]
                self.creds = kubeapi.admin_conf_over_ssh(self.store, cps)
        return self.creds

    def open_api(self) -> tuple:
        """(the Kubernetes API or the one-line reason it cannot be used, its state or why
        not). The API is tried through the kubeconfig's server, then each control plane's."""
        cps = list(self.inventory.by_role(CONTROL_PLANE))
        try:
            conf, source = self.credentials()
            api = kubeapi.connect(conf, source, cps, self.settings.connect_timeout,
                                  self.settings.command_timeout)
        except kubeapi.ApiUnavailable as exc:
            return str(exc), str(exc)
        try:
            return api, kubeapi.read_state(api)
        except kubeapi.ApiUnavailable as exc:
            return api, str(exc)

    def start_api(self) -> None:
        """Open the API in the background (a daemon: Ctrl-C does not wait for an API that is
        slow to answer); api_result() waits for it."""
        kubeapi.load_client()
        self.api = Future()
        threading.Thread(target=self._opening, daemon=True, name="kubeaccept-api").start()

    def _opening(self) -> None:
        try:
            self.api.set_result(self.open_api())
        except BaseException as exc:  # noqa: BLE001 - handed to the tests that use the API
            self.api.set_exception(exc)

    def api_result(self) -> tuple:
        if self.api is None:  # a run that did not start it (the failover gate's phase)
            self.api = Future()
            self.api.set_result(self.open_api())
        return self.api.result()

    def close(self) -> None:
        self.store.close()
