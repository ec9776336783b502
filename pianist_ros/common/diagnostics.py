"""The single import site for diagnostic_updater.

Uses the real ``diagnostic_updater`` package where it is installed (a ROS install)
and otherwise :mod:`pianist_ros.common._diagnostic_updater_shim`, which offers the
same subset of its API. Nothing else in the package imports either directly.
"""

from __future__ import annotations

try:  # pragma: no cover - depends on the install
    from diagnostic_updater import DiagnosticStatusWrapper
    from diagnostic_updater import DiagnosticTask
    from diagnostic_updater import FrequencyStatus
    from diagnostic_updater import FrequencyStatusParam
    from diagnostic_updater import FunctionDiagnosticTask
    from diagnostic_updater import Updater
    USING_SHIM = False
except ImportError:
    from pianist_ros.common._diagnostic_updater_shim import DiagnosticStatusWrapper
    from pianist_ros.common._diagnostic_updater_shim import DiagnosticTask
    from pianist_ros.common._diagnostic_updater_shim import FrequencyStatus
    from pianist_ros.common._diagnostic_updater_shim import FrequencyStatusParam
    from pianist_ros.common._diagnostic_updater_shim import FunctionDiagnosticTask
    from pianist_ros.common._diagnostic_updater_shim import Updater
    USING_SHIM = True

from diagnostic_msgs.msg import DiagnosticStatus

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE

__all__ = [
    'DiagnosticStatusWrapper', 'DiagnosticTask', 'FrequencyStatus', 'FrequencyStatusParam',
    'FunctionDiagnosticTask', 'Updater', 'USING_SHIM', 'OK', 'WARN', 'ERROR', 'STALE',
    'level_name', 'make_updater',
]

_LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}


def level_name(level) -> str:
    """Return 'OK', 'WARN', 'ERROR' or 'STALE' for a level given as bytes or int."""
    if isinstance(level, int):
        level = bytes([level])
    return _LEVEL_NAMES.get(level, 'UNKNOWN')


def make_updater(node, hardware_id: str, period: float = 1.0) -> Updater:
    """Create an Updater on ``node`` with its hardware id set.

    :param node: the rclpy node that publishes ``/diagnostics``.
    :param hardware_id: e.g. the device id or ``camera:/dev/video0``.
    :param period: publish period in seconds (overridable through the
        ``diagnostic_updater.period`` parameter).
    """
    updater = Updater(node, period=period)
    updater.setHardwareID(hardware_id)
    return updater
