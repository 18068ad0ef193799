"""The node's cluster-DNS query (gather.sh sends one A query over UDP and prints the reply's
bytes in hex): the reply decoded (RFC 1035 wire format) and told in the words dig uses."""

from __future__ import annotations

import ipaddress

QUERY_ID = 0x6B61  # the id gather.sh's query carries
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class Malformed(ValueError):
    pass


def _skip_name(msg: bytes, at: int) -> int:
    """Where the field after the (possibly compressed) name at `at` starts; the pointers are
    followed to the name's end, so that a loop or a pointer out of the message is caught."""
    end, hops = None, 0
    while True:
        if at >= len(msg):
            raise Malformed("name runs past the end")
        n = msg[at]
        if n & 0xC0 == 0xC0:  # a pointer to a name earlier in the message
            if at + 1 >= len(msg) or hops > 32:
                raise Malformed("bad compression pointer")
            end = at + 2 if end is None else end
            at, hops = ((n & 0x3F) << 8) | msg[at + 1], hops + 1
            continue
        if n == 0:
            return at + 1 if end is None else end
        at += 1 + n


def decode(msg: bytes) -> tuple[str, list[str]]:
    """(rcode name, the addresses of the answer's A records: what `dig +short` prints)."""
    if len(msg) < 12:
        raise Malformed(f"{len(msg)} bytes, shorter than a DNS header")
    ident, flags, qd, an = (int.from_bytes(msg[i:i + 2], "big") for i in (0, 2, 4, 6))
    if ident != QUERY_ID:
        raise Malformed(f"id {ident:#06x} is not the query's {QUERY_ID:#06x}")
    if not flags & 0x8000:
        raise Malformed("not a response")
    rcode = RCODES.get(flags & 0xF, f"RCODE{flags & 0xF}")
    at = 12
    for _ in range(qd):
        at = _skip_name(msg, at) + 4
    addresses = []
    for _ in range(an):
        at = _skip_name(msg, at)
        if at + 10 > len(msg):
            raise Malformed("answer runs past the end")
        rtype, rclass = (int.from_bytes(msg[i:i + 2], "big") for i in (at, at + 2))
        size = int.from_bytes(msg[at + 8:at + 10], "big")
        data = msg[at + 10:at + 10 + size]
        if len(data) != size:
            raise Malformed("record data runs past the end")
        if rtype == 1 and rclass == 1 and size == 4:
            addresses.append(str(ipaddress.IPv4Address(data)))
        at += 10 + size
    return rcode, addresses


def hex_bytes(lines: list[str]) -> bytes:
    """`od -An -tx1 -v` output back into bytes."""
    return bytes(int(word, 16) for line in lines for word in line.split())


def is_hex_line(line: str) -> bool:
    words = line.split()
    return bool(words) and all(len(w) == 2 and all(c in "0123456789abcdef" for c in w)
                               for w in words)


def tell(lines: list[str], rc: int, server: str, timeout: str) -> list[str]:
    """The query's outcome as lines the DNS check reads as it reads `dig +short`: the
    addresses on NOERROR, else `status: NXDOMAIN` & co., or what went wrong."""
    reply = [line for line in lines if is_hex_line(line)]
    other = [line for line in lines if line.strip() and not is_hex_line(line)]
    if not reply:
        if rc == 124:
            return [f";; no reply from {server}#53: timed out after {timeout} s (1 try)", *other]
        return other or [f";; no reply from {server}#53 (exit code {rc})"]
    try:
        rcode, addresses = decode(hex_bytes(reply))
    except Malformed as exc:
        return [f";; error: malformed reply from {server}#53: {exc}", *other]
    if rcode != "NOERROR":
        return [f";; status: {rcode} from {server}#53"]
    return addresses
