"""Parameters of the telemetry_bridge node and the frozen config built from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from pianist_ros.common.params import defaults
from pianist_ros.common.params import Param

NODE_NAME = 'telemetry_bridge'

_RESTART = 'node restart'
# Every value here is read once into the frozen config at construction, so a run-time
# set could never take effect: read_only makes set_parameters refuse it with a reason
# instead of reporting success (STYLE.md section 5).
_RO = {'applies': _RESTART, 'read_only': True}

SCHEMA: tuple[Param, ...] = (
    Param('host', '0.0.0.0',
          'address the HTTP server binds (0.0.0.0 = every IPv4 interface, 127.0.0.1 = local)',
          **_RO),
    Param('port', 5000, 'TCP port of the HTTP server (0 = any free port, logged at start)',
          min_value=0, max_value=65535, **_RO),
    Param('stale_after', 5.0,
          'seconds without a processed frame or a component status before /health is error',
          min_value=0.5, max_value=600.0, **_RO),
    Param('required_components', ['camera: camera', 'hand_detector: detector'],
          'diagnostic status names that must be reporting for /health to be ok (any other '
          'status makes it error only while its fresh level is ERROR)', **_RO),
    Param('advisory_components', ['image_recorder: recorder', 'ota_manager: ota'],
          'auxiliary status names whose ERROR, WARN or silence only go to warnings and '
          'never make /health error (wins over required_components)', **_RO),
    Param('require_frames', True,
          'whether /health needs a processed frame (hands/count) within stale_after; '
          'false when running without the detector', **_RO),
    Param('forget_after_sec', 60.0,
          'seconds after which a silent status that is not required is dropped from '
          '/health and /metrics (until then it shows STALE as a warning)',
          min_value=1.0, max_value=86400.0, **_RO),
    Param('fps_window_sec', 5.0, 'sliding window in seconds for current_fps',
          min_value=0.5, max_value=60.0, **_RO),
    Param('liveness_timeout_sec', 10.0,
          'seconds without an executor heartbeat before /livez answers 503 (hung node)',
          min_value=1.0, max_value=600.0, **_RO),
    Param('http.timeout_sec', 5.0,
          'seconds a client has to send a whole request head (also keep-alive idle and '
          'response write timeout); slow or silent clients are dropped after it',
          min_value=0.1, max_value=120.0, **_RO),
    Param('http.max_connections', 256,
          'open HTTP connections at most; more are answered 503 and closed',
          min_value=1, max_value=10000, **_RO),
    Param('http.max_header_bytes', 8192,
          'bytes at most in a request line plus headers; larger requests get 431',
          min_value=1024, max_value=65536, **_RO),
    Param('max_components', 64,
          'distinct diagnostic status names tracked at most (caps memory against floods)',
          min_value=1, max_value=4096, **_RO),
)


@dataclass(frozen=True)
class TelemetryConfig:
    """Frozen values of :data:`SCHEMA` (dots in names become underscores)."""

    host: str
    port: int
    stale_after: float
    required_components: tuple[str, ...]
    advisory_components: tuple[str, ...]
    require_frames: bool
    forget_after_sec: float
    fps_window_sec: float
    liveness_timeout_sec: float
    http_timeout_sec: float
    http_max_connections: int
    http_max_header_bytes: int
    max_components: int

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> 'TelemetryConfig':
        """Build from ``params.values(node, SCHEMA)`` (or :func:`default_config` overrides)."""
        fields = dict(values)
        fields['required_components'] = tuple(
            str(n) for n in fields['required_components'] if str(n).strip())
        fields['advisory_components'] = tuple(
            str(n) for n in fields['advisory_components'] if str(n).strip())
        return cls(**fields)


def default_config(**overrides: Any) -> TelemetryConfig:
    """Return the schema defaults, with ``overrides`` (by field name) applied."""
    values = defaults(SCHEMA)
    unknown = set(overrides) - set(values)
    if unknown:
        raise TypeError(f'unknown telemetry config fields: {sorted(unknown)}')
    values.update(overrides)
    return TelemetryConfig.from_values(values)
