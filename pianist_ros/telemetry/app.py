"""The HTTP endpoints of the telemetry bridge as one request handler (ROS-free).

| path | 200 when | else |
| --- | --- | --- |
| ``/health`` | the health model says ok | 503 with ``reasons`` |
| ``/readyz`` | the camera streams and frames were processed within stale_after | 503 |
| ``/livez`` | the ROS executor ran the node's heartbeat within liveness_timeout_sec | 503 |
| ``/metrics`` | always (Prometheus text format) | |

Unknown paths get 404 JSON; other methods than GET / HEAD on a known path get 405
with an ``Allow`` header.
"""

from __future__ import annotations

import time

from pianist_ros.telemetry.health import HealthModel
from pianist_ros.telemetry.metrics import TelemetryMetrics
from pianist_ros.telemetry.server import json_response
from pianist_ros.telemetry.server import Request
from pianist_ros.telemetry.server import Response

ENDPOINTS = ('/health', '/livez', '/readyz', '/metrics')
_ALLOWED = 'GET, HEAD'
_MAX_ECHO_CHARS = 200


class TelemetryApp:
    """Route requests to /health, /livez, /readyz and /metrics and count them.

    :param model: the health model (read with lock-free snapshots).
    :param metrics: the private Prometheus registry and HTTP counters.
    """

    def __init__(self, model: HealthModel, metrics: TelemetryMetrics):
        self._model = model
        self._metrics = metrics
        self._routes = {'/health': self._health, '/livez': self._livez,
                        '/readyz': self._readyz, '/metrics': self._metrics_page}

    def __call__(self, request: Request) -> Response:
        """Answer one request."""
        start = time.perf_counter()
        route = self._routes.get(request.path)
        if route is None:
            response = json_response(404, {'error': 'not found',
                                           'path': request.path[:_MAX_ECHO_CHARS],
                                           'endpoints': list(ENDPOINTS)})
        elif request.method not in ('GET', 'HEAD'):
            response = json_response(405, {'error': f'method {request.method} not allowed',
                                           'allow': _ALLOWED}, (('Allow', _ALLOWED),))
        else:
            response = route()
        label = self._metrics.path_label(request.path)
        self._metrics.requests.labels(label, str(response.status)).inc()
        self._metrics.latency.labels(label).observe(time.perf_counter() - start)
        return response

    def connection_error(self, reason: str) -> None:
        """Count a connection the server closed early (its ``on_connection_error`` hook)."""
        self._metrics.connection_errors.labels(reason).inc()

    def _health(self) -> Response:
        report = self._model.snapshot()
        return json_response(report.http_code, report.to_dict())

    def _livez(self) -> Response:
        report = self._model.snapshot()
        payload = {'status': 'alive' if report.live else 'hung',
                   'uptime_seconds': round(report.uptime_seconds, 3),
                   'heartbeat_age_sec': round(report.heartbeat_age_sec, 3)}
        return json_response(200 if report.live else 503, payload)

    def _readyz(self) -> Response:
        report = self._model.snapshot()
        payload = {'status': 'ready' if report.ready else 'not ready',
                   'camera_state': report.camera_state,
                   'last_frame_age_sec': (None if report.last_frame_age_sec is None
                                          else round(report.last_frame_age_sec, 3)),
                   'current_fps': round(report.current_fps, 3)}
        return json_response(200 if report.ready else 503, payload)

    def _metrics_page(self) -> Response:
        body, content_type = self._metrics.render()
        return Response(200, body, content_type)
