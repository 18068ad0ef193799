"""kubeadm's uploaded control-plane certificates: information for the next control-plane join."""

from __future__ import annotations

from kubeaccept.model.findings import Finding
from kubeaccept.model.registry import Context, check

REUPLOAD = ("to join another control plane, re-upload the certificates first: kubeadm init "
            "phase upload-certs --upload-certs (prints the --certificate-key)")


@check("cluster_kubeadm_certs",
       ("information: whether the `kubeadm-certs` Secret is there, and the command to "
        "re-upload it"),
       area="control plane",
       needs=('api',),
       reads=("whether the kube-system/kubeadm-certs Secret exists (metadata only)",),
       asserts=("information only (never fails): whether the `kubeadm-certs` Secret exists; "
                "when not, the note gives `kubeadm init phase upload-certs --upload-certs`"),
       prevents="joining a control plane after the Secret's 2 hours (report 03)")
def cluster_kubeadm_certs(ctx: Context) -> list[Finding]:
    """Never a failure: kubeadm deletes the Secret 2 hours after `kubeadm init --upload-certs`
    (field report 03), so its absence is the normal state of a cluster older than that."""
    state = ctx.api
    subject = "kube-system/kubeadm-certs"
    expected = "information only"
    if "kubeadm-certs" in state.kube_system_secrets:
        return [Finding(subject, True, "present (a control plane can join with "
                        "--certificate-key for up to 2 hours after upload)", expected,
                        evidence=("kubectl -n kube-system get secret kubeadm-certs",))]
    return [Finding(subject, True, "Secret kube-system/kubeadm-certs absent", expected,
                    evidence=("kubectl -n kube-system get secret kubeadm-certs -> NotFound",),
                    note=REUPLOAD)]
