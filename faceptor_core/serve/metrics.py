"""Prometheus text exposition (format 0.0.4) of the service's counters and histograms, written here so the
service needs no metrics library."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def _label_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = {k: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for k, v in labels.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(esc.items())) + "}"


def _num(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class Counter:
    def __init__(self, name: str, help_: str):
        self.name, self.help, self.values, self._lock = name, help_, {}, threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self.values[key] = self.values.get(key, 0.0) + amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            lines += [f"{self.name}{_label_text(dict(k))} {_num(v)}" for k, v in sorted(self.values.items())]
        return lines


class Gauge(Counter):
    def set(self, value: float) -> None:
        with self._lock:
            self.values[()] = float(value)

    def render(self) -> list[str]:
        return [line.replace(" counter", " gauge") if line.startswith("# TYPE") else line for line in super().render()]


class Histogram:
    def __init__(self, name: str, help_: str, buckets: Sequence[float]):
        self.name, self.help, self.buckets = name, help_, tuple(sorted(buckets))
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum, self.count, self._lock = 0.0, 0, threading.Lock()

    def observe(self, value: float) -> None:
        i = next((k for k, b in enumerate(self.buckets) if value <= b), len(self.buckets))
        with self._lock:
            self.counts[i] += 1
            self.sum += value
            self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            running = 0
            for b, c in zip((*self.buckets, math.inf), self.counts, strict=True):
                running += c
                lines.append(f'{self.name}_bucket{{le="{_num(b)}"}} {running}')
            lines += [f"{self.name}_sum {_num(self.sum)}", f"{self.name}_count {self.count}"]
        return lines


class Metrics:
    """The service's metrics: requests by endpoint and status, photos and faces, batch sizes, queue wait, model
    pass time and request latency."""

    def __init__(self) -> None:
        self.requests = Counter("faceptor_requests_total", "HTTP requests by endpoint and status code.")
        self.photos = Counter("faceptor_photos_total", "Photos analysed.")
        self.faces = Counter("faceptor_faces_total", "Faces analysed.")
        self.batch_size = Histogram("faceptor_batch_size_photos", "Photos per model pass.", BATCH_BUCKETS)
        self.queue_wait = Histogram(
            "faceptor_queue_wait_seconds", "Time a ready photo waited for its batch.", LATENCY_BUCKETS
        )
        self.batch_seconds = Histogram("faceptor_batch_seconds", "Time of one batched analysis.", LATENCY_BUCKETS)
        self.latency = Histogram(
            "faceptor_request_latency_seconds",
            "Time from a request's arrival to its answer (analysis endpoints).",
            LATENCY_BUCKETS,
        )
        self.queued = Gauge("faceptor_queued_photos", "Photos waiting for a batch.")

    def render(self) -> str:
        parts = (
            self.requests,
            self.photos,
            self.faces,
            self.batch_size,
            self.queue_wait,
            self.batch_seconds,
            self.latency,
            self.queued,
        )
        return "\n".join(line for m in parts for line in m.render()) + "\n"
