"""The telemetry_bridge node: /diagnostics, camera/state and hands/count -> HTTP /health.

The node only converts messages into plain values for the :class:`HealthModel`
(copy-on-write state, lock-free reads) and owns the HTTP server thread. Callbacks
are O(1) and never wait on the HTTP side.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Int32
from std_msgs.msg import String

from pianist_ros import __version__
from pianist_ros.common import diagnostics
from pianist_ros.common import params
from pianist_ros.common import topics
from pianist_ros.common.device import device_id
from pianist_ros.common.device import software_revision
from pianist_ros.telemetry.app import TelemetryApp
from pianist_ros.telemetry.config import NODE_NAME
from pianist_ros.telemetry.config import SCHEMA
from pianist_ros.telemetry.config import TelemetryConfig
from pianist_ros.telemetry.health import ComponentReport
from pianist_ros.telemetry.health import HealthModel
from pianist_ros.telemetry.metrics import TelemetryMetrics
from pianist_ros.telemetry.server import HttpServer
from pianist_ros.telemetry.server import ServerLimits
from pianist_ros.telemetry.server import ServerStartError
from pianist_ros.telemetry.server import start_http_server

#: Seconds between executor heartbeats (what /livez checks).
HEARTBEAT_SEC = 0.5
#: Seconds between attempts to bind the HTTP port after a failure (e.g. port still taken).
RETRY_SEC = 5.0
#: Depth of the /diagnostics subscription: every node publishes about once a second.
DIAGNOSTICS_DEPTH = 50


class TelemetryBridgeNode(Node):
    """Serve /health, /livez, /readyz and /metrics for the stack running on this device."""

    def __init__(self, **kwargs):
        self._config: TelemetryConfig | None = None
        self._model: HealthModel | None = None
        self._metrics: TelemetryMetrics | None = None
        self._app: TelemetryApp | None = None
        self._server: HttpServer | None = None
        self._thread = None
        self._server_error = ''
        self._retry_timer = None
        self._updater = None
        self._callback_errors = 0
        self._diagnostics_received = 0
        super().__init__(NODE_NAME, **kwargs)
        params.declare(self, SCHEMA)
        self._config = TelemetryConfig.from_values(params.values(self, SCHEMA))
        self._own_prefix = f'{self.get_name()}:'
        self._model = HealthModel(self._config, device_id=device_id(), version=__version__,
                                  git_hash=software_revision())
        self._metrics = TelemetryMetrics(self._model)
        self._app = TelemetryApp(self._model, self._metrics)
        if not self._start_server():
            self._retry_timer = self.create_timer(RETRY_SEC, self._on_retry_timer)
        self._updater = diagnostics.make_updater(self, device_id())
        self._updater.add('http', self._diagnose_http)
        self.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics,
                                 DIAGNOSTICS_DEPTH)
        self.create_subscription(String, topics.CAMERA_STATE, self._on_camera_state,
                                 topics.LATCHED_QOS)
        self.create_subscription(Int32, topics.HANDS_COUNT, self._on_hands_count,
                                 topics.RESULT_QOS)
        self.create_timer(HEARTBEAT_SEC, self._on_heartbeat_timer)

    @property
    def model(self) -> HealthModel:
        """Return the health model that tests and tools read snapshots from."""
        return self._model

    @property
    def http_port(self) -> int | None:
        """Return the bound TCP port, or ``None`` while the server is not running."""
        return self._server.port if self._server is not None else None

    def _start_server(self) -> bool:
        cfg = self._config
        limits = ServerLimits(timeout_sec=cfg.http_timeout_sec,
                              max_connections=cfg.http_max_connections,
                              max_header_bytes=cfg.http_max_header_bytes)
        try:
            self._server, self._thread = start_http_server(
                self._app, cfg.host, cfg.port, limits,
                on_connection_error=self._app.connection_error)
        except ServerStartError as exc:
            self._server_error = str(exc)
            self.get_logger().error(f'telemetry HTTP server not started: {exc}; '
                                    f'retrying every {RETRY_SEC:g} s',
                                    throttle_duration_sec=60.0)
            return False
        self._server_error = ''
        shown = '127.0.0.1' if cfg.host in ('0.0.0.0', '::', '') else cfg.host
        self.get_logger().info(f'health at http://{shown}:{self._server.port}/health '
                               f'(listening on {cfg.host}:{self._server.port})')
        return True

    def _on_retry_timer(self) -> None:
        if self._start_server() and self._retry_timer is not None:
            self.destroy_timer(self._retry_timer)
            self._retry_timer = None

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        try:
            self._diagnostics_received += 1
            reports = [
                ComponentReport.capped(s.name, _level(s.level), s.message, s.hardware_id,
                                       ((kv.key, kv.value) for kv in s.values))
                for s in msg.status if not s.name.startswith(self._own_prefix)]
            if reports:
                self._model.update_components(reports)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the bridge
            self._callback_failed('diagnostics', exc)

    def _on_camera_state(self, msg: String) -> None:
        try:
            self._model.set_camera_state(msg.data)
        except Exception as exc:  # noqa: BLE001
            self._callback_failed('camera/state', exc)

    def _on_hands_count(self, msg: Int32) -> None:
        try:
            self._model.record_frame(msg.data)
        except Exception as exc:  # noqa: BLE001
            self._callback_failed('hands/count', exc)

    def _on_heartbeat_timer(self) -> None:
        self._model.heartbeat()

    def _callback_failed(self, what: str, exc: Exception) -> None:
        self._callback_errors += 1
        self.get_logger().error(f'{what} callback failed ({self._callback_errors} so far): '
                                f'{exc!r}; message dropped', throttle_duration_sec=10.0)

    def _diagnose_http(self, stat):
        server = self._server
        if server is None or not server.running:
            error = self._server_error or (server.error if server is not None else '')
            stat.summary(diagnostics.ERROR, f'HTTP server not running: {error}')
        elif self._callback_errors:
            stat.summary(diagnostics.WARN, f'{self._callback_errors} callback errors')
        else:
            stat.summary(diagnostics.OK, f'serving on port {server.port}')
        report = self._model.snapshot()
        stat.add('port', server.port if server is not None else '')
        stat.add('open_connections', server.open_connections if server is not None else 0)
        stat.add('health', report.status)
        stat.add('reasons', '; '.join(report.reasons))
        stat.add('current_fps', f'{report.current_fps:.2f}')
        stat.add('diagnostics_received', self._diagnostics_received)
        stat.add('callback_errors', self._callback_errors)
        return stat

    def destroy_node(self) -> None:
        """Stop and join the HTTP server thread, then destroy the node."""
        if self._server is not None:
            self._server.shutdown(self._thread)
            self._server = None
            self._thread = None
        super().destroy_node()


def _level(level) -> int:
    """Return a diagnostic level as int (rclpy gives ``bytes`` of length 1)."""
    if isinstance(level, (bytes, bytearray)):
        return level[0] if level else 2
    return int(level)


def main(args: list[str] | None = None) -> int:
    """Run the telemetry bridge alone (``ros2 run pianist_ros telemetry_bridge``)."""
    from pianist_ros.common.ros_main import run_node
    return run_node(TelemetryBridgeNode, args)
