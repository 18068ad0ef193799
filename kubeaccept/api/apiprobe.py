"""GET an apiserver's health endpoints from the machine running the suite (anonymous: kubeadm
clusters allow /readyz to system:unauthenticated), verifying TLS against the cluster CA."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from kubeaccept.model.apistate import Answer


def get(url: str, ca_pem: bytes | None, timeout: float) -> Answer:
    ctx = ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else \
        ssl._create_unverified_context()  # noqa: S323 - no CA known: still report what answers
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=timeout) as resp:
            return Answer(url, resp.status, resp.read(65536).decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        return Answer(url, exc.code, exc.read(65536).decode(errors="replace"))
    except (OSError, ssl.SSLError) as exc:
        return Answer(url, None, str(getattr(exc, "reason", exc)))


def readyz_all(urls: list[str], ca_pem: bytes | None, timeout: float) -> dict[str, Answer]:
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(urls)))) as pool:
        return dict(zip(urls, pool.map(lambda u: get(u, ca_pem, timeout), urls), strict=True))
