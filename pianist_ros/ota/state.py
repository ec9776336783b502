"""Persisted OTA state: one JSON file written atomically (temp + fsync + os.replace)."""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
import enum
import json
import logging
import os
import tempfile
from typing import Any

from pianist_ros.ota.errors import StateError

logger = logging.getLogger(__name__)

STATE_FILE = 'state.json'
_MAX_STATE_BYTES = 1 << 20
_MAX_FAILED = 50


class Phase(str, enum.Enum):
    """Where an update is; anything but IDLE is resumed after a restart."""

    IDLE = 'idle'
    #: Checkout of the target is in progress (or about to start).
    APPLYING = 'applying'
    #: Target checked out; restart issued or about to be; health not yet confirmed.
    HEALTH_CHECK = 'health_check'
    #: Health failed; checking out the previous commit and restarting it.
    ROLLING_BACK = 'rolling_back'
    #: Previous commit restarted; waiting for it to be healthy again.
    ROLLBACK_HEALTH_CHECK = 'rollback_health_check'


@dataclass
class OtaState:
    """Everything that must survive a restart of the manager."""

    phase: Phase = Phase.IDLE
    current_version: str = ''
    current_hash: str = ''
    previous_version: str = ''
    previous_hash: str = ''
    target_version: str = ''
    target_hash: str = ''
    update_started_at: float = 0.0
    attempts: int = 0
    failure: str = ''
    last_sequence: int = 0
    last_digest: str = ''
    failed_hashes: list[str] = field(default_factory=list)
    last_check_time: float = 0.0
    last_result: str = ''
    last_error: str = ''
    last_report_key: str = ''
    reports_dropped: int = 0
    #: Why the last delivery of queued reports failed ('' after a full flush).
    report_error: str = ''

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        out = asdict(self)
        out['phase'] = self.phase.value
        return out

    @classmethod
    def from_json(cls, data: Any) -> 'OtaState':
        """Build from a dict, ignoring unknown keys (a newer release may add some).

        :raises StateError: not an object or a field of the wrong type.
        """
        if not isinstance(data, dict):
            raise StateError('state is not a JSON object')
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        defaults = cls()
        for name, value in data.items():
            if name not in known:
                continue
            default = getattr(defaults, name)
            if name == 'phase':
                try:
                    value = Phase(value)
                except ValueError as exc:
                    raise StateError(f'unknown phase {value!r}') from exc
            elif isinstance(default, float) and isinstance(value, int):
                value = float(value)
            elif type(value) is not type(default):
                raise StateError(f'state field {name} has type {type(value).__name__}')
            kwargs[name] = value
        return cls(**kwargs)

    def mark_failed(self, git_hash: str) -> None:
        """Remember a commit that failed its health check, so it is not retried."""
        if git_hash and git_hash not in self.failed_hashes:
            self.failed_hashes = (self.failed_hashes + [git_hash])[-_MAX_FAILED:]


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably.

    The temp file is fsynced before ``os.replace`` and the directory after it, so a
    power cut leaves either the old or the new file, never a torn one.

    :raises OSError: the write failed; ``path`` is unchanged.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """Fsync a directory so a rename or unlink in it is durable."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


class StateStore:
    """Load and save :class:`OtaState` in ``<state_dir>/state.json``."""

    def __init__(self, state_dir: str):
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)

    def load(self) -> OtaState:
        """Return the saved state, or a fresh one when there is none.

        A corrupt file is moved aside (``state.json.corrupt``) and a fresh state returned:
        the device keeps updating, and the replay floor restarts at 0, which the
        version anti-rollback check still backs up.

        :raises StateError: the directory cannot be created or the file read.
        """
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            with open(self.path, 'rb') as handle:
                raw = handle.read(_MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return OtaState()
        except OSError as exc:
            raise StateError(f'cannot read {self.path}: {exc}') from exc
        try:
            if len(raw) > _MAX_STATE_BYTES:
                raise StateError('state file too large')
            return OtaState.from_json(json.loads(raw.decode('utf-8')))
        except (StateError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning('state file %s is corrupt (%s); starting fresh', self.path, exc)
            try:
                os.replace(self.path, self.path + '.corrupt')
            except OSError:
                pass
            return OtaState()

    def save(self, state: OtaState) -> None:
        """Persist ``state`` atomically.

        :raises StateError: the write failed.
        """
        data = json.dumps(state.to_json(), indent=1, sort_keys=True).encode('utf-8')
        try:
            os.makedirs(self.state_dir, exist_ok=True)
            atomic_write(self.path, data)
        except OSError as exc:
            raise StateError(f'cannot write {self.path}: {exc}') from exc
