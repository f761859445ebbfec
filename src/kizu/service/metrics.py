"""Prometheus metrics of one service instance (its own registry, so several apps can coexist)."""

from __future__ import annotations

import threading
from collections import deque

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Requests, latency, verdicts, batches, queue depth, and the live false-alarm signal: the share
    of p <= alpha among the last ``recent`` images (on good production it should stay near alpha)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, recent: int = 500):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("kizu_requests", "HTTP requests by route and status", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("kizu_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.verdicts = Counter("kizu_inspections", "Inspected images by verdict", ["verdict"], registry=r)
        self.batch_size = Histogram("kizu_batch_images", "Images per inference batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_seconds = Histogram("kizu_batch_seconds", "Inference time per batch", buckets=LATENCY_BUCKETS,
                                       registry=r)
        self.queue = Gauge("kizu_queue_images", "Images waiting or being inspected", registry=r)
        self.flag_share = Gauge("kizu_recent_flag_share",
                                "Share of p-value <= alpha among the last recent images (live false-alarm signal)",
                                registry=r)
        self.recent_images = Gauge("kizu_recent_images", "Images in the flag-share window", registry=r)
        self.alpha = Gauge("kizu_alpha", "The model's target false-alarm rate", registry=r)
        self.model_info = Gauge("kizu_model_info", "The model being served (value 1)", ["model_id", "detector"],
                                registry=r)
        self.reloads = Counter("kizu_model_reloads", "Model reloads by outcome", ["outcome"], registry=r)
        self.reviews = Counter("kizu_reviews", "Operator reviews by label and whether it was an audit sample",
                               ["label", "audit"], registry=r)
        self._recent: deque[bool] = deque(maxlen=recent)
        self._lock = threading.Lock()

    def observe_verdicts(self, p_values: list[float], defective: list[bool], alpha: float) -> None:
        """Count verdicts and update the flag share (called from the inference thread)."""
        with self._lock:
            for p, d in zip(p_values, defective):
                self.verdicts.labels("defective" if d else "good").inc()
                self._recent.append(p == p and p <= alpha)
            self.flag_share.set(sum(self._recent) / len(self._recent) if self._recent else 0.0)
            self.recent_images.set(len(self._recent))

    def set_model(self, model_id: str, detector: str, alpha: float) -> None:
        self.model_info.clear()
        self.model_info.labels(model_id, detector).set(1)
        self.alpha.set(alpha)

    def render(self) -> bytes:
        return generate_latest(self.registry)
