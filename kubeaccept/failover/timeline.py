"""Samples taken during an outage and what they say: times are seconds from power-off."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    start: float
    end: float
    ok: bool | None  # None: the sample could not be taken (e.g. exec failed): not a verdict
    detail: str = ""
    data: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Run:
    """A run of consecutive failed samples."""
    first: Sample
    last: Sample
    count: int
    until: float  # start of the next good sample, or the end of the last failed one

    @property
    def seconds(self) -> float:
        return self.until - self.first.start


def after(samples: list[Sample], t: float) -> list[Sample]:
    return [s for s in samples if s.start >= t]


def failure_runs(samples: list[Sample]) -> list[Run]:
    runs, current = [], []
    for s in samples:
        if s.ok is False:
            current.append(s)
        elif s.ok and current:
            runs.append(Run(current[0], current[-1], len(current), s.start))
            current = []
    if current:
        runs.append(Run(current[0], current[-1], len(current), current[-1].end))
    return runs


def longest_failure(samples: list[Sample]) -> Run | None:
    runs = failure_runs(samples)
    return max(runs, key=lambda r: r.seconds) if runs else None


def last_failure(samples: list[Sample]) -> Sample | None:
    failed = [s for s in samples if s.ok is False]
    return failed[-1] if failed else None


def first_success(samples: list[Sample]) -> Sample | None:
    return next((s for s in samples if s.ok), None)


def max_gap(samples: list[Sample], start: float, end: float) -> float:
    """The longest time in [start, end] without a sample starting: the sampling resolution
    actually achieved."""
    times = [start] + sorted(s.start for s in samples if start <= s.start <= end) + [end]
    return max(b - a for a, b in zip(times, times[1:], strict=False))


class Sampler(threading.Thread):
    """Starts `probe` every `interval` seconds until stopped, up to `parallel` at once, so a
    probe that waits for its timeout does not stretch the sampling interval; probe() ->
    (ok, detail, data)."""

    def __init__(self, name: str, probe: Callable[[], tuple[bool | None, str, dict]],
                 interval: float, parallel: int = 4, clock: Callable[[], float] = time.monotonic):
        super().__init__(name=f"kubeaccept-{name}", daemon=True)
        self.kind = name
        self.probe = probe
        self.interval = interval
        self.clock = clock
        self.t0 = clock()
        self.samples: list[Sample] = []
        self._slots = threading.Semaphore(parallel)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._shift = 0.0
        self._active = 0

    def _one(self) -> None:
        with self._lock:
            self._active += 1
        begin = self.clock()
        try:
            ok, detail, data = self.probe()
        except Exception as exc:  # noqa: BLE001 - a probe error is a failed sample
            ok, detail, data = False, f"{type(exc).__name__}: {exc}"[:300], {}
        finally:
            self._slots.release()
        end = self.clock()
        with self._lock:
            self.samples.append(Sample(begin - self.t0, end - self.t0, ok, detail, data))
            self._active -= 1

    def run(self) -> None:
        tick = self.clock()
        while not self._stop_event.is_set():
            if self._slots.acquire(timeout=self.interval):
                threading.Thread(target=self._one, daemon=True).start()
            tick += self.interval
            self._stop_event.wait(max(0.0, tick - self.clock()))

    def timeline(self) -> list[Sample]:
        """Samples in the order they were started, times from power-off."""
        with self._lock:
            samples = sorted(self.samples, key=lambda s: s.start)
        return [Sample(s.start - self._shift, s.end - self._shift, s.ok, s.detail, s.data)
                for s in samples]

    def mark(self, t0: float) -> None:
        """Power-off happened at clock time t0."""
        self._shift = t0 - self.t0

    def stop(self, timeout: float = 10) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)
        deadline = time.monotonic() + timeout  # let started probes finish (each is bounded)
        while self._active and time.monotonic() < deadline:
            time.sleep(0.05)
