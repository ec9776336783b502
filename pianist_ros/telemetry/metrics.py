"""Prometheus metrics for /metrics, on a private registry (ROS-free).

Health gauges are produced at scrape time by a custom collector from one
:meth:`HealthModel.snapshot`, so /metrics and /health always agree and nothing is
stored twice. HTTP counters are ordinary prometheus_client metrics (thread-safe).
A private :class:`CollectorRegistry` keeps several bridges in one process (tests,
bringup) from clashing in the global default registry.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import generate_latest
from prometheus_client import Histogram
from prometheus_client import PlatformCollector
from prometheus_client import ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from pianist_ros.telemetry.health import HealthModel
from pianist_ros.telemetry.health import LEVEL_NAMES
from pianist_ros.telemetry.health import numeric_values

PREFIX = 'pianist'
#: Endpoints counted by name; anything else is counted as 'other' (bounded labels).
KNOWN_PATHS = ('/health', '/livez', '/readyz', '/metrics')
#: ``pianist_diagnostic_value`` series per scrape at most: with max_components statuses of
#: up to 64 values each, a flood of chatty publishers would otherwise grow /metrics to MBs.
MAX_VALUE_SERIES = 256


class HealthCollector(Collector):
    """Expose one health snapshot as gauges at every scrape."""

    def __init__(self, model: HealthModel):
        self._model = model

    def collect(self) -> Iterator[Metric]:
        """Yield the health gauges."""
        report = self._model.snapshot()
        labels = {'device': report.device_id, 'version': report.version}
        info = GaugeMetricFamily(f'{PREFIX}_build_info', 'Device and software version, always 1',
                                 labels=list(labels))
        info.add_metric(list(labels.values()), 1.0)
        yield info
        yield GaugeMetricFamily(f'{PREFIX}_health_ok', '1 when /health is ok, 0 when error',
                                value=1.0 if report.ok else 0.0)
        yield GaugeMetricFamily(f'{PREFIX}_ready', '1 when frames flow and the camera streams',
                                value=1.0 if report.ready else 0.0)
        yield GaugeMetricFamily(f'{PREFIX}_uptime_seconds', 'Seconds since the bridge started',
                                value=report.uptime_seconds)
        yield GaugeMetricFamily(f'{PREFIX}_detector_fps',
                                'Processed frames per second seen on hands/count',
                                value=report.current_fps)
        yield GaugeMetricFamily(f'{PREFIX}_hands_detected', 'Hands in the most recent frame',
                                value=float(report.hands_detected))
        yield CounterMetricFamily(f'{PREFIX}_frames_processed',
                                  'Processed frames seen since the bridge started',
                                  value=float(report.frames_processed))
        yield GaugeMetricFamily(f'{PREFIX}_last_frame_age_seconds',
                                'Seconds since the last processed frame (-1: none yet)',
                                value=(-1.0 if report.last_frame_age_sec is None
                                       else report.last_frame_age_sec))
        camera = GaugeMetricFamily(f'{PREFIX}_camera_state',
                                   '1 for the current camera state', labels=['state'])
        camera.add_metric([report.camera_state or 'UNKNOWN'], 1.0)
        yield camera
        levels = GaugeMetricFamily(
            f'{PREFIX}_component_level',
            'Effective diagnostic level: ' + ', '.join(f'{k} {v}' for k, v in LEVEL_NAMES.items()),
            labels=['component'])
        ages = GaugeMetricFamily(f'{PREFIX}_component_age_seconds',
                                 'Seconds since the component last reported (-1: never)',
                                 labels=['component'])
        values = GaugeMetricFamily(f'{PREFIX}_diagnostic_value',
                                   'Numeric key/values of diagnostic statuses',
                                   labels=['component', 'key'])
        by_name = {v: k for k, v in LEVEL_NAMES.items()}
        config = self._model.config
        pinned = set(config.required_components) | set(config.advisory_components)
        budget = MAX_VALUE_SERIES
        values_dropped = 0
        # Configured components get their values first, so a flood cannot crowd them out.
        for comp in sorted(report.components, key=lambda c: (c.name not in pinned, c.name)):
            levels.add_metric([comp.name], float(by_name.get(comp.level, 2)))
            ages.add_metric([comp.name], -1.0 if comp.age_sec is None else comp.age_sec)
            for key, number in numeric_values(comp.values):
                if budget <= 0:
                    values_dropped += 1
                    continue
                budget -= 1
                values.add_metric([comp.name, key], number)
        yield levels
        yield ages
        yield values
        yield GaugeMetricFamily(f'{PREFIX}_diagnostic_values_dropped',
                                f'Numeric diagnostic values left out of this scrape '
                                f'(at most {MAX_VALUE_SERIES} series)',
                                value=float(values_dropped))
        yield GaugeMetricFamily(f'{PREFIX}_diagnostic_statuses_dropped',
                                'Statuses ignored because max_components was reached',
                                value=float(report.dropped_statuses))


class TelemetryMetrics:
    """The private registry with health gauges, HTTP counters and process metrics."""

    def __init__(self, model: HealthModel):
        self.registry = CollectorRegistry()
        self.registry.register(HealthCollector(model))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(f'{PREFIX}_http_requests', 'HTTP requests answered',
                                ['path', 'code'], registry=self.registry)
        self.connection_errors = Counter(
            f'{PREFIX}_http_connection_errors',
            'Connections closed early: timeout, rejected (over max_connections), '
            'bad_request, too_large, reset, handler_error',
            ['reason'], registry=self.registry)
        self.latency = Histogram(f'{PREFIX}_http_handler_seconds',
                                 'Time to build a response, by path', ['path'],
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25),
                                 registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """Return the exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    @staticmethod
    def path_label(path: str) -> str:
        """Return ``path`` if it is an endpoint, else 'other' (keeps label cardinality low)."""
        return path if path in KNOWN_PATHS else 'other'
