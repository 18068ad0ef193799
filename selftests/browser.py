"""Headless Chromium (Debian's chromium-headless-shell) for the HTML report's self-tests: the
DOM after the page's script ran, and screenshots."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

FLAGS = ["--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--headless"]


def chromium() -> str:
    for name in ("chromium-headless-shell", "chromium"):
        if path := shutil.which(name):
            return path
    raise RuntimeError("no headless Chromium: apt-get install chromium-headless-shell "
                       "(scripts/setup installs it)")


def dump_dom(url: str) -> str:
    proc = subprocess.run([chromium(), *FLAGS, "--dump-dom", url], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium --dump-dom {url}: rc {proc.returncode}: "
                           f"{proc.stderr[-500:]}")
    return proc.stdout


def screenshot(url: str, path: Path, size: str = "1280,900") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    proc = subprocess.run([chromium(), *FLAGS, f"--screenshot={path}", f"--window-size={size}",
                           url], capture_output=True, text=True, timeout=60)
    if not path.exists() or path.stat().st_size < 1000:
        raise RuntimeError(f"chromium --screenshot: rc {proc.returncode}: {proc.stderr[-500:]}")
    return path


class Dom(HTMLParser):
    """Elements with their attributes and text, flat: enough to read cells and panels."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(el)
        if tag not in ("br", "meta", "img", "input", "link"):
            self._open.append(el)

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self._open:
            el["text"] += data

    def find(self, tag: str | None = None, **attrs) -> list[dict]:
        return [e for e in self.elements if (tag is None or e["tag"] == tag)
                and all(e.get(k.rstrip("_")) == v for k, v in attrs.items())]

    def by_id(self, id: str) -> dict | None:
        return next((e for e in self.elements if e.get("id") == id), None)
