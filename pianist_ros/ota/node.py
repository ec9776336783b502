"""The ``ota_manager`` node: the OTA checker in a background thread, diagnostics, check_now."""

from __future__ import annotations

import logging
import threading

from rclpy.node import Node
from std_srvs.srv import Trigger

from pianist_ros.common import diagnostics
from pianist_ros.common import params
from pianist_ros.common.device import device_id
from pianist_ros.ota.config import make_config
from pianist_ros.ota.config import NODE_NAME
from pianist_ros.ota.config import OtaConfig
from pianist_ros.ota.config import SCHEMA
from pianist_ros.ota.errors import OtaError
from pianist_ros.ota.manager import ERROR_RESULTS
from pianist_ros.ota.manager import OtaManager
from pianist_ros.ota.state import Phase

#: Results that are a rejected or failed update, shown as WARN.
_WARN_RESULTS = frozenset({
    'fetch_error', 'manifest_invalid', 'signature_invalid', 'manifest_expired',
    'manifest_replayed', 'refused_downgrade', 'refused_dirty_tree', 'refused_unknown_hash',
    'skipped_failed_hash', 'restart_failed', 'rolled_back'})


class _RosLogHandler(logging.Handler):
    """Forward the OTA modules' ``logging`` records to the node's ROS logger."""

    def __init__(self, ros_logger):
        super().__init__(logging.INFO)
        self._ros = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.ERROR:
                self._ros.error(text)
            elif record.levelno >= logging.WARNING:
                self._ros.warning(text)
            else:
                self._ros.info(text)
        except Exception:  # noqa: BLE001 - logging must never break the checker
            self.handleError(record)


class OtaManagerNode(Node):
    """Run :class:`OtaManager` in a thread; publish diagnostics ``ota``; ``~/check_now``.

    Parameters are read once at start (the checker thread owns the config); changes
    apply after a node restart, which an OTA update causes anyway.
    """

    def __init__(self, **kwargs):
        self._manager: OtaManager | None = None
        self._config: OtaConfig | None = None
        self._init_error = ''
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._crashes = 0
        self._updater = None
        super().__init__(NODE_NAME, **kwargs)
        # The manager logs through ``logging`` (it also runs in the pianist-ota CLI).
        self._log_handler = _RosLogHandler(self.get_logger())
        self._ota_logger = logging.getLogger('pianist_ros.ota')
        self._ota_logger.addHandler(self._log_handler)
        if self._ota_logger.getEffectiveLevel() > logging.INFO:
            self._ota_logger.setLevel(logging.INFO)
        params.declare(self, SCHEMA)
        try:
            self._config = make_config(params.values(self, SCHEMA))
            self._manager = OtaManager(self._config)
        except (OtaError, ValueError) as exc:
            self._init_error = str(exc)
            self.get_logger().error(f'OTA disabled: {exc}')
        self._updater = diagnostics.make_updater(self, device_id())
        self._updater.add('ota', self._on_diagnostics)
        self.create_service(Trigger, '~/check_now', self._on_check_now)
        if self._manager is not None:
            self._thread = threading.Thread(target=self._run_checker, name='ota-checker',
                                            daemon=True)
            self._thread.start()

    def _run_checker(self) -> None:
        while not self._stop.is_set():
            try:
                self._manager.run(self._stop, self._wake)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug
                self._crashes += 1
                self.get_logger().error(f'OTA checker failed: {exc!r}; restarting it in 5 s')
                self._stop.wait(5.0)

    def _on_check_now(self, _request: Trigger.Request, response: Trigger.Response
                      ) -> Trigger.Response:
        if self._manager is None:
            response.success = False
            response.message = f'OTA disabled: {self._init_error}'
            return response
        # The check itself may take minutes (git, health gate): only wake the thread.
        self._wake.set()
        response.success = True
        response.message = 'check scheduled'
        return response

    def _on_diagnostics(self, stat):
        if self._manager is None:
            stat.summary(diagnostics.ERROR, f'OTA disabled: {self._init_error}')
            return stat
        status = self._manager.status()
        for key in ('current_version', 'current_hash', 'phase', 'target_version',
                    'last_check_time', 'last_result', 'last_error', 'pending_reports',
                    'reports_dropped', 'report_error', 'last_sequence', 'checks'):
            stat.add(key, status[key])
        stat.add('checker_crashes', self._crashes)
        result = status['last_result']
        if not status['enabled']:
            stat.summary(diagnostics.OK, 'OTA disabled (manifest_url or public_key empty)')
        elif result in ERROR_RESULTS or self._crashes:
            stat.summary(diagnostics.ERROR, f'{result}: {status["last_error"]}')
        elif status['phase'] != Phase.IDLE.value:
            stat.summary(diagnostics.WARN, f'update in progress: {status["phase"]}')
        elif result in _WARN_RESULTS:
            stat.summary(diagnostics.WARN, f'{result}: {status["last_error"]}')
        else:
            stat.summary(diagnostics.OK, f'version {status["current_version"] or "unknown"}'
                         f', last check {result or "pending"}')
        return stat

    def destroy_node(self) -> None:
        """Stop the checker thread (a health wait is abandoned and resumes later)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            if self._thread.is_alive():
                self.get_logger().warning('OTA checker still busy (git or restart command); '
                                          'leaving it to exit with the process')
        self._ota_logger.removeHandler(self._log_handler)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the ota_manager node (``ros2 run pianist_ros ota_manager``)."""
    from pianist_ros.common.ros_main import run_node
    return run_node(OtaManagerNode, args)
