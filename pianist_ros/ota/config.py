"""Parameters of the ``ota_manager`` node (and of ``pianist-ota``), and their frozen config."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
import os
from typing import Any, Mapping

from pianist_ros.common.params import merge_values
from pianist_ros.common.params import Param

NODE_NAME = 'ota_manager'

_NEXT = 'next check'

SCHEMA: tuple[Param, ...] = (
    Param('manifest_url', '',
          'http(s) URL of the signed version manifest; empty disables OTA', applies=_NEXT),
    Param('public_key', '',
          'pinned ed25519 public key that must sign the manifest: a file path (PEM or raw '
          '32 bytes) or inline hex / base64; empty disables OTA', applies='node restart',
          read_only=True),
    Param('poll_interval_sec', 300.0, 'seconds between manifest checks (s)',
          min_value=1.0, max_value=86400.0, applies=_NEXT),
    Param('poll_jitter_sec', 30.0,
          'each wait is poll_interval_sec plus uniform random [-jitter, +jitter] (s)',
          min_value=0.0, max_value=86400.0, applies=_NEXT),
    Param('startup_jitter_sec', 300.0,
          'first check after start waits uniform random [0, this] seconds, so a fleet that '
          'boots together does not poll together; an interrupted update resumes at once (s)',
          min_value=0.0, max_value=86400.0, applies='node restart'),
    Param('request_timeout_sec', 10.0,
          'total timeout of one manifest, report or health request (s)',
          min_value=0.1, max_value=600.0, applies=_NEXT),
    Param('max_manifest_bytes', 65536, 'largest manifest body accepted (bytes)',
          min_value=256, max_value=16 * 1024 * 1024, applies=_NEXT),
    Param('allow_prerelease', False,
          'install pre-release versions (1.1.0rc1); off: they are skipped', applies=_NEXT),
    Param('repo_dir', '',
          'git working tree that is updated; empty: the checkout holding this package',
          applies='node restart', read_only=True),
    Param('git_remote', 'origin', 'git remote fetched before checking out', applies=_NEXT),
    Param('git_timeout_sec', 300.0, 'timeout of one git command (s)',
          min_value=1.0, max_value=3600.0, applies=_NEXT),
    Param('service_name', 'pianist.service', 'systemd unit restarted after a checkout',
          applies=_NEXT),
    Param('restart_command', 'systemctl restart {service}',
          'command that restarts the service ({service} is replaced; split like a shell '
          'command, not run through a shell)', applies=_NEXT),
    Param('restart_timeout_sec', 120.0, 'timeout of the restart command (s)',
          min_value=1.0, max_value=3600.0, applies=_NEXT),
    Param('health.url', 'http://127.0.0.1:5000/health',
          'health endpoint polled after a restart (JSON "status": "ok")', applies=_NEXT),
    Param('health.timeout_sec', 120.0,
          'the new version must be healthy within this time or it is rolled back (s)',
          min_value=0.5, max_value=3600.0, applies=_NEXT),
    Param('health.poll_interval_sec', 2.0, 'seconds between health polls (s)',
          min_value=0.05, max_value=60.0, applies=_NEXT),
    Param('health.ok_streak', 3,
          'consecutive ok answers needed to commit an update', min_value=1, max_value=100,
          applies=_NEXT),
    Param('report_url', '',
          'URL that receives every outcome as a JSON POST; empty: reports stay queued on disk',
          applies=_NEXT),
    Param('max_pending_reports', 1000,
          'reports kept on disk while the report server is unreachable (oldest dropped '
          'beyond this, and counted)', min_value=1, max_value=1000000, applies=_NEXT),
    Param('state_dir', '',
          'directory of the persisted state and report queue; empty: $STATE_DIRECTORY/ota '
          'or ~/.local/state/pianist/ota', applies='node restart', read_only=True),
    Param('device_id', '',
          'device id sent in reports and used for the rollout cohort; empty: '
          '$PIANIST_DEVICE_ID or the host name', applies='node restart', read_only=True),
    Param('max_apply_attempts', 3,
          'attempts at one update interrupted by crashes before it is rolled back',
          min_value=1, max_value=20, applies=_NEXT),
)


@dataclass(frozen=True)
class OtaConfig:
    """Frozen OTA settings, built from ROS parameters or a YAML section."""

    manifest_url: str = ''
    public_key: str = ''
    poll_interval_sec: float = 300.0
    poll_jitter_sec: float = 30.0
    startup_jitter_sec: float = 300.0
    request_timeout_sec: float = 10.0
    max_manifest_bytes: int = 65536
    allow_prerelease: bool = False
    repo_dir: str = ''
    git_remote: str = 'origin'
    git_timeout_sec: float = 300.0
    service_name: str = 'pianist.service'
    restart_command: str = 'systemctl restart {service}'
    restart_timeout_sec: float = 120.0
    health_url: str = 'http://127.0.0.1:5000/health'
    health_timeout_sec: float = 120.0
    health_poll_interval_sec: float = 2.0
    health_ok_streak: int = 3
    report_url: str = ''
    max_pending_reports: int = 1000
    state_dir: str = ''
    device_id: str = ''
    max_apply_attempts: int = 3

    @property
    def enabled(self) -> bool:
        """Return whether both a manifest URL and a pinned key are configured."""
        return bool(self.manifest_url and self.public_key)

    def resolved_state_dir(self) -> str:
        """Return ``state_dir`` or the default location when it is empty."""
        if self.state_dir:
            return self.state_dir
        base = os.environ.get('STATE_DIRECTORY', '').split(':')[0]
        if base:
            return os.path.join(base, 'ota')
        return os.path.join(os.path.expanduser('~'), '.local', 'state', 'pianist', 'ota')

    def resolved_repo_dir(self) -> str:
        """Return ``repo_dir`` or the directory above this package when it is empty."""
        if self.repo_dir:
            return self.repo_dir
        here = os.path.dirname(os.path.abspath(__file__))
        return os.path.dirname(os.path.dirname(here))

    def resolved_device_id(self) -> str:
        """Return ``device_id`` or the common device id when it is empty."""
        if self.device_id:
            return self.device_id
        from pianist_ros.common.device import device_id
        return device_id()


def make_config(values: Mapping[str, Any] | None = None) -> OtaConfig:
    """Build an :class:`OtaConfig` from ``{name or field: value}``, validated by SCHEMA.

    :param values: parameter names (``health.url``) or field names (``health_url``).
    :raises ValueError: on an unknown name or a value the schema refuses.
    :return: the frozen config; missing values take their defaults.
    """
    merged = merge_values(SCHEMA, values, NODE_NAME)
    known = {f.name for f in fields(OtaConfig)}
    return OtaConfig(**{k: v for k, v in merged.items() if k in known})
