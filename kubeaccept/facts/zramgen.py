"""What zram-generator makes of a node's configuration, as its 1.1.2 release does it (Debian
12's systemd-zram-generator; src/config.rs, src/generator.rs, zram-generator.conf(5)), and as
selftests/unit/test_zram_generator.py checks against the real binary's output:

- the main file is the first of /run, /etc, /usr/local/lib, /usr/lib
  `systemd/zram-generator.conf` that exists (a link to /dev/null exists and is empty; a dangling
  link does not exist); it is read first;
- then the `zram-generator.conf.d/*.conf` drop-ins of all four directories, sorted by file name
  whatever their directory; a name in a later directory (/usr/lib < /usr/local/lib < /etc <
  /run) replaces the same name in an earlier one, a link to /dev/null empties it;
- `[zramN]` sections (N a number) merge key by key, the last value read wins; other sections
  and keys outside sections are ignored; the INI reader is rust-ini 0.18 (a comment only at the
  start of a line, `#`/`;` anywhere else before a key is an error, in a value it is part of it);
- `systemd.zram` on the kernel command line (the last such word wins): false makes nothing,
  true adds `[zram0]` with the defaults if no file names it;
- `host-memory-limit` (MB) below MemTotal (MB, rounded down) drops the device; `zram-size`
  (default `min(ram / 2, 4096)`, a fasteval expression in MB of `ram`) or the obsolete
  `zram-fraction`/`max-zram-size` give its size; size 0 drops it;
- a device is swap unless `mount-point` is set or `fs-type` is other than `swap`; one with an
  fs-type and no mount-point gets no unit at all;
- any error (a value it cannot parse, a negative size, a name `ram` is not) stops the generator:
  it writes no unit at all."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

DIRS = ("/usr/lib", "/usr/local/lib", "/etc", "/run")  # config.rs locate_fragments
MAIN = "systemd/zram-generator.conf"
DROPINS = "systemd/zram-generator.conf.d/"
DEFAULT_SIZE = "min(ram / 2, 4096)"
KEYS = ("host-memory-limit", "memory-limit", "zram-size", "swap-priority", "mount-point",
        "fs-type", "options", "compression-algorithm", "writeback-device", "zram-fraction",
        "max-zram-size")  # config.rs parse_line; any other key is ignored with a warning


class GeneratorError(Exception):
    """What makes zram-generator exit 1 without writing units."""


class Undecided(Exception):
    """An expression this model does not evaluate (fasteval has more than it covers)."""


@dataclass(frozen=True)
class Device:
    name: str
    keys: dict
    size_mb: float  # what the generator computes; > 0 for a device it makes
    swap: bool
    mount_point: str | None = None
    fs_type: str | None = None


@dataclass(frozen=True)
class Outcome:
    files: tuple[str, ...] = ()            # the files read, in the order read
    devices: tuple[Device, ...] = ()       # the devices it makes units for
    dropped: tuple[tuple[str, str], ...] = ()  # (device, why it is not made)
    undecided: tuple[tuple[str, str], ...] = ()  # (device, why this model cannot say)
    error: str | None = None               # the generator stops: no units at all
    disabled: str | None = None            # the kernel command line says no zram

    @property
    def swaps(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.swap)


def read_order(confs: dict[str, str]) -> list[str]:
    """The files zram-generator reads, in order: the main file, then the drop-ins."""
    main = next((f"{d}/{MAIN}" for d in reversed(DIRS) if f"{d}/{MAIN}" in confs), None)
    by_name: dict[str, str] = {}
    for d in DIRS:
        for path in sorted(confs):
            rest = path[len(f"{d}/{DROPINS}"):]
            if path.startswith(f"{d}/{DROPINS}") and "/" not in rest \
                    and rest.endswith(".conf") and not rest.startswith("."):
                by_name[rest] = path
    return ([main] if main else []) + [by_name[n] for n in sorted(by_name)]


def parse_ini(text: str, path: str) -> list[tuple[str | None, str | None, str]]:
    """(section, key, value) in file order, as rust-ini 0.18's default parser reads them; a
    section header alone is (section, None, "") (an empty section still names a device)."""
    out: list[tuple[str | None, str | None, str]] = []
    section, key, i, n = None, "", 0, len(text)
    line, col = 0, 0

    def where() -> str:
        return f"{path}: {line}:{col}"

    def bump() -> None:
        nonlocal i, line, col
        if text[i] == "\n":
            line, col = line + 1, 0
        else:
            col += 1
        i += 1

    def until(stops: str, eof_ok: bool) -> str:
        buf = []
        while i < n and text[i] not in stops:
            if text[i] == "\\":
                bump()
                if i >= n:
                    raise GeneratorError(f"{where()} expecting a character after \\ but found EOF")
                buf.append({"0": "\0", "a": "\a", "b": "\b", "t": "\t", "r": "\r", "n": "\n",
                            "\n": ""}.get(text[i], text[i]))
                if text[i] == "x":
                    raise Undecided(f"{path}: a \\x escape")
            else:
                buf.append(text[i])
            bump()
        if i >= n and not eof_ok:
            raise GeneratorError(f"{where()} expecting {stops!r} but found EOF.")
        return "".join(buf)

    def spaces(newlines: bool) -> None:
        while i < n and text[i].isspace() and (newlines or text[i] not in "\r\n"):
            bump()

    spaces(True)
    while i < n:
        c = text[i]
        if c in ";#":
            if col > 0:
                raise GeneratorError(f"{path}: {line}:{col + 1} doesn't support inline comment")
            while i < n and text[i] != "\n":
                bump()
        elif c == "[":
            bump()
            section = until("]", False).strip()
            bump()
            out.append((section, None, ""))
        elif c in "=:":
            if not key:
                raise GeneratorError(f"{where()} missing key")
            bump()
            spaces(False)
            if i < n and text[i] in "\"'":
                q = text[i]
                bump()
                value = until(q, False)
                bump()
                value += until("\r\n", True)
            else:
                value = until("\r\n", True)
            out.append((section, key, value.strip()))
            key = ""
        else:
            key = until("=:", False).strip()
        spaces(True)
    return out


_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?P<si>[kKMGTmunp]?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\|\||&&|!=|==|>=|<=|[-+*/%^(),<>!]))")
_SI = {"k": 3, "K": 3, "M": 6, "G": 9, "T": 12, "m": -3, "u": -6, "n": -9, "p": -12}
# fasteval's binary operators, low to high precedence: each operator a level of its own
_OPS = ("||", "&&", "!=", "==", ">=", "<=", ">", "<", "+", "-", "*", "/", "%", "^")
_FUNCS = {"int": lambda a: float(math.trunc(a[0])), "ceil": lambda a: float(math.ceil(a[0])),
          "floor": lambda a: float(math.floor(a[0])), "abs": lambda a: abs(a[0]),
          "sign": lambda a: math.copysign(1.0, a[0]), "min": min, "max": max,
          "e": lambda a: math.e, "pi": lambda a: math.pi,
          "log": lambda a: math.log10(a[0]) if len(a) == 1 else math.log(a[1], a[0]),
          "round": lambda a: float(round(a[0])) if len(a) == 1
          else float(round(a[1] / a[0])) * a[0]}


def evaluate(expr: str, ram: float) -> float:
    """A zram-size expression in MB, as fasteval 0.2 evaluates it with `ram` = MemTotal MB:
    SI suffixes on numbers, `+ - * / % ^` with `^` right-associative and every operator its
    own precedence level (so `2 * 10 % 7` is 2 * (10 % 7)), unary signs binding the next
    value. GeneratorError where fasteval fails; Undecided for what this model leaves out."""
    tokens, pos = [], 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if not m:
            rest = expr[pos:].strip()
            if rest[:1] in "#;=":  # seen: fasteval stops on what rust-ini left of a comment
                raise GeneratorError(f"zram-size: UnparsedTokensRemaining({rest!r})")
            raise Undecided(f"zram-size {expr!r}: {rest!r} is not read here")
        tokens.append(m)
        pos = m.end()
    at = 0

    def peek() -> str | None:
        return tokens[at].group("op") if at < len(tokens) else None

    def value() -> float:
        nonlocal at
        if at >= len(tokens):
            raise GeneratorError("zram-size: EofWhileParsing")
        t = tokens[at]
        at += 1
        if t.group("op") in ("-", "+", "!"):
            v = value()
            return {"-": -v, "+": v, "!": float(v == 0)}[t.group("op")]
        if t.group("op") == "(":
            v = expression()
            if peek() != ")":
                raise GeneratorError("zram-size: unbalanced parentheses")
            at += 1
            return v
        if t.group("num"):
            return float(t.group("num")) * 10 ** _SI.get(t.group("si"), 0)
        name = t.group("name")
        if name is None:
            raise GeneratorError(f"zram-size: InvalidValue at {t.group(0).strip()!r}")
        if peek() == "(":
            at += 1
            args = []
            while peek() != ")":
                args.append(expression())
                if peek() == ",":
                    at += 1
            at += 1
            if name not in _FUNCS:
                raise Undecided(f"zram-size uses {name}(), which this model does not evaluate")
            try:
                return float(_FUNCS[name](args))
            except (ValueError, IndexError, ZeroDivisionError) as exc:
                raise Undecided(f"zram-size {name}() of {args}: {exc}") from None
        if name == "ram":
            return ram
        raise GeneratorError(f'zram-size: Undefined("{name}")')

    def expression() -> float:
        nonlocal at
        values, ops = [value()], []
        while peek() is not None and peek() in _OPS:
            ops.append(peek())
            at += 1
            values.append(value())
        if peek() is not None and peek() not in "),":
            raise GeneratorError(f"zram-size: UnparsedTokensRemaining at "
                                 f"{tokens[at].group(0).strip()!r}")
        return _fold(values, ops)

    result = expression()
    if at < len(tokens):
        raise GeneratorError("zram-size: UnparsedTokensRemaining")
    return result


_LEVEL = {"||": 0, "&&": 1, "!=": 2, "==": 2, ">=": 2, "<=": 2, ">": 2, "<": 2, "+": 3, "-": 4,
          "*": 5, "/": 6, "%": 7, "^": 8}  # evaler.rs: the comparisons share one level
_COMPARE = {"||": lambda a, b: a if a != 0 else b, "&&": lambda a, b: a if a == 0 else b,
            "!=": lambda a, b: a != b, "==": lambda a, b: a == b, ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def _fold(values: list[float], ops: list[str]) -> float:
    """Split at the lowest-precedence operator: at its last use (left to right), or its first
    for `^` (right to left), as fasteval's evaler.rs reduces them."""
    if not ops:
        return values[0]
    level = min(_LEVEL[o] for o in ops)
    at = [i for i, o in enumerate(ops) if _LEVEL[o] == level]
    k = at[0] if level == _LEVEL["^"] else at[-1]
    low = ops[k]
    a, b = _fold(values[:k + 1], ops[:k]), _fold(values[k + 1:], ops[k + 1:])
    if low in _COMPARE:
        return float(_COMPARE[low](a, b))
    if low == "+":
        return a + b
    if low == "-":
        return a - b
    if low == "*":
        return a * b
    if low == "/":
        return a / b if b else math.copysign(math.inf, a) if a else math.nan
    if low == "%":
        return math.fmod(a, b) if b else math.nan
    try:
        return a ** b
    except (OverflowError, ZeroDivisionError):
        return math.inf
    except ValueError:
        return math.nan


def kernel_option(cmdline: str) -> bool | None:
    """config.rs kernel_has_option: the last `systemd.zram[=…]` word it understands."""
    for word in reversed(cmdline.split()):
        if word.startswith("systemd.zram"):
            rest = word[len("systemd.zram"):]
            if rest in ("", "=1", "=yes", "=true", "=on"):
                return True
            if rest in ("=0", "=no", "=false", "=off"):
                return False
    return None


def _size(name: str, keys: dict, ram: int) -> float:
    if "zram-fraction" in keys or "max-zram-size" in keys:  # the obsolete pair wins
        limit = keys.get("max-zram-size")
        limit = math.inf if limit in (None, "none") else int(limit)
        return min(math.floor(float(keys.get("zram-fraction", 0.5)) * ram), limit)
    size = evaluate(keys.get("zram-size", DEFAULT_SIZE), float(ram))
    if math.isnan(size) or size < 0:
        raise GeneratorError(f"{name}: zram-size={size:g} < 0")
    return size


def _check(name: str, key: str, value: str) -> None:
    """The parse errors config.rs parse_line raises for a key's value."""
    if key in ("host-memory-limit", "memory-limit", "max-zram-size"):
        if value != "none" and not re.fullmatch(r"\+?\d+", value):
            raise GeneratorError(f'Failed to parse optional size "{value}"')
    elif key == "swap-priority":
        if not re.fullmatch(r"[-+]?\d+", value):
            raise GeneratorError(f'Failed to parse priority "{value}"')
        if not -1 <= int(value) <= 32767:
            raise GeneratorError(f"Swap priority {int(value)} out of range")
    elif key in ("mount-point", "writeback-device"):
        if not value.startswith("/") or "/../" in value + "/":
            raise GeneratorError(f"{key} {value} is not absolute or not normalized")
    elif key == "zram-fraction":
        try:
            if float(value) < 0:
                raise GeneratorError(f"{name}: zram-fraction={value} < 0")
        except ValueError:
            raise GeneratorError(f'Failed to parse zram-fraction "{value}"') from None
    elif key == "zram-size":
        try:  # syntax only: a parse error stops the generator here, a name only when used
            evaluate(value, 1.0)
        except GeneratorError as exc:
            if "Undefined" not in str(exc):
                raise


def generate(confs: dict[str, str], memtotal_kb: int | None, cmdline: str) -> Outcome:
    """What zram-generator 1.1.2 does with `confs` (path -> text; a link to /dev/null as
    ""), MemTotal and the kernel command line."""
    kernel = kernel_option(cmdline)
    if kernel is False:
        return Outcome(disabled="systemd.zram=0 on the kernel command line")
    files = read_order(confs)
    sections: dict[str, dict] = {}
    try:
        for path in files:
            for section, key, value in parse_ini(confs[path], path):
                if section is None or not re.fullmatch(r"zram\+?\d+", section):
                    continue
                keys = sections.setdefault(section, {})
                if key in KEYS:
                    _check(section, key, value)
                    keys["host-memory-limit" if key == "memory-limit" else key] = value
        if kernel:
            sections.setdefault("zram0", {})
        if sections and memtotal_kb is None:
            raise Undecided("MemTotal was not read")
        ram = (memtotal_kb or 0) // 1024
        made, dropped, undecided = [], [], []
        for name, keys in sorted(sections.items()):
            limit = keys.get("host-memory-limit", "none")
            if limit != "none" and int(limit) < ram:
                dropped.append((name, f"host-memory-limit = {limit} is below MemTotal "
                                      f"({ram} MB)"))
                continue
            try:
                size = _size(name, keys, ram)
            except Undecided as exc:
                undecided.append((name, str(exc)))
                continue
            if size * 1024 * 1024 < 1:
                dropped.append((name, f"its size is 0 ({keys.get('zram-size', DEFAULT_SIZE)}"
                                      f" with ram = {ram})"))
                continue
            fs_type, mount = keys.get("fs-type"), keys.get("mount-point")
            swap = mount is None and fs_type in (None, "swap")
            if not swap and mount is None:
                dropped.append((name, f"fs-type = {fs_type} and no mount-point: no unit"))
                continue
            made.append(Device(name, keys, size, swap, mount, fs_type))
    except GeneratorError as exc:
        return Outcome(tuple(files), error=str(exc))
    except Undecided as exc:
        return Outcome(tuple(files), undecided=(("*", str(exc)),))
    return Outcome(tuple(files), tuple(made), tuple(dropped), tuple(undecided))
