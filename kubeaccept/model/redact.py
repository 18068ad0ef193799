"""Secrets never reach a report: private keys, kubeadm bootstrap tokens and certificate keys,
kubeconfig credentials and passwords are masked in every text a test report carries (JUnit,
HTML, terminal, properties). Evidence quotes node files and command lines, which can hold
them."""

from __future__ import annotations

import base64
import binascii
import functools
import re

MASK = "***"

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE "
                  r"KEY-----|\Z)", re.S)
# base64 of "-----BEGIN ": a PEM block inside a kubeconfig, a Secret or a base64 file dump
_B64_PEM = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]{20,}")
_RULES: tuple[tuple[re.Pattern, str], ...] = (
    # kubeconfig users: client-key-data, token, password (YAML or JSON spelling)
    (re.compile(r"(\"?(?:client-key-data|token|password|auth|id-token|refresh-token)\"?"
                r"\s*:\s*\"?)[^\s\",}]+"), r"\1" + MASK),
    # kubeadm: bootstrap tokens are "[a-z0-9]{6}.[a-z0-9]{16}": the id is public, the rest not
    (re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b"), r"\1." + MASK),
    # kubeadm join/init --certificate-key, and certificateKey in its config
    (re.compile(r"((?:--certificate-key|certificateKey)[\s=:\"]+)[0-9a-fA-F]{16,}"),
     r"\1" + MASK),
    # credentials in URLs (proxies, registries)
    (re.compile(r"(://[^/\s:@]+:)[^/\s@]+@"), r"\1" + MASK + "@"),
    # key=value and key: value passwords (Ansible's ansible_password, become passwords, ...)
    (re.compile(r"(\b[\w.-]*(?:password|passwd|_pass|secret)[\w.-]*\"?\s*[=:]\s*[\"']?)"
                r"(?!\*\*\*)[^\s,;\"']+", re.I), r"\1" + MASK),
    # HAProxy stats auth user:password; HTTP Authorization headers
    (re.compile(r"(\bstats\s+auth\s+[^:\s]+:)\S+"), r"\1" + MASK),
    (re.compile(r"(\bAuthorization:\s*(?:Bearer|Basic)\s+)\S+", re.I), r"\1" + MASK),
    # power commands: ipmitool -P password, sshpass -p password
    (re.compile(r"(\b(?:ipmitool|sshpass)\b[^\n]*?\s-[Pp]\s*)\S+"), r"\1" + MASK),
)


def _b64_pem(match: re.Match) -> str:
    blob = match.group(0)
    head = blob[: len(blob) - len(blob) % 4][:64]
    try:
        text = base64.b64decode(head + "=" * (-len(head) % 4), validate=False)
    except (binascii.Error, ValueError):
        return blob
    return MASK if b"PRIVATE KEY" in text else blob


@functools.lru_cache(maxsize=8192)
def redact(text: str) -> str:
    """`text` with every secret it holds masked. Cached: a run's reports repeat the same
    evidence, why and fix texts across hundreds of hosts."""
    if not text:
        return text
    text = _PEM.sub(lambda m: f"-----BEGIN {m.group(1)}PRIVATE KEY----- {MASK}", text)
    text = _B64_PEM.sub(_b64_pem, text)
    for pattern, repl in _RULES:
        text = pattern.sub(repl, text)
    return text
