"""Parse config files read off a node; a malformed file is an error message with its line."""

from __future__ import annotations

import json
import tomllib

import yaml

from kubeaccept.facts import FileFact


class ConfigError(Exception):
    pass


def load(fact: FileFact) -> dict | None:
    """The file's content as a mapping; None when the file does not exist."""
    if not fact.exists:
        return None
    if fact.error:
        raise ConfigError(f"{fact.path}: {fact.error}")
    return parse_text(fact.path, fact.text or "")


def parse_text(path: str, text: str, kind: str = "") -> dict:
    """`text` read from `path` as a mapping; the format is `kind` (json, toml, yaml), else
    the path's extension says."""
    kind = kind or ("json" if path.endswith(".json") else
                    "toml" if path.endswith(".toml") else "yaml")
    try:
        if kind == "json":
            data = json.loads(text) if text.strip() else {}
        elif kind == "toml":
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: {problem}") from None
    except RecursionError:  # the parsers recurse per level of [ or {
        raise ConfigError(f"{path}: nested too deeply to parse") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, "
                          f"found {type(data).__name__}")
    return data


KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
