"""The health model: component statuses, camera state and frame flow -> /health (ROS-free).

Writers (the node's ROS callbacks) feed plain values in; readers (HTTP handlers on
another thread) call :meth:`HealthModel.snapshot`. Shared state lives in one
immutable :class:`_State` value that writers replace under a writer-only lock
(copy-on-write); readers take no lock at all, they read one reference. So a reader
never sees a half-updated state, and a slow HTTP client can never hold up a ROS
callback. The clock is injected, so tests drive time by hand.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from dataclasses import replace
import math
import threading
import time
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from pianist_ros.telemetry.config import TelemetryConfig

OK = 0
WARN = 1
ERROR = 2
STALE = 3
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}

#: The camera state that counts as healthy (docs/contract.md, camera/state).
STREAMING = 'STREAMING'
#: Status whose ``state`` key mirrors camera/state (used until the topic is heard).
CAMERA_STATUS = 'camera: camera'

# Caps on what one diagnostics publisher can make us store (external input).
MAX_NAME_CHARS = 128
MAX_MESSAGE_CHARS = 512
MAX_VALUES = 64
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 256
MAX_STATE_CHARS = 64
#: Frame timestamps kept for the FPS window; the rate stays exact above this many.
MAX_FRAME_TIMES = 512


def level_name(level: int) -> str:
    """Return 'OK', 'WARN', 'ERROR', 'STALE' or 'UNKNOWN' for a diagnostic level."""
    return LEVEL_NAMES.get(level, 'UNKNOWN')


@dataclass(frozen=True)
class ComponentReport:
    """One diagnostic status as plain data (the node converts the ROS message).

    :param name: status name, ``'<node>: <task>'``.
    :param level: 0 OK, 1 WARN, 2 ERROR, 3 STALE (anything else counts as ERROR).
    :param message: human-readable summary.
    :param hardware_id: the reporting device.
    :param values: key/value pairs, in order.
    """

    name: str
    level: int
    message: str = ''
    hardware_id: str = ''
    values: tuple[tuple[str, str], ...] = ()

    @classmethod
    def capped(cls, name: str, level: int, message: str = '', hardware_id: str = '',
               values: Iterable[tuple[str, str]] = ()) -> 'ComponentReport':
        """Build a report with every string and the value count capped."""
        kept = []
        for key, value in values:
            if len(kept) >= MAX_VALUES:
                break
            kept.append((str(key)[:MAX_KEY_CHARS], str(value)[:MAX_VALUE_CHARS]))
        return cls(str(name)[:MAX_NAME_CHARS], int(level), str(message)[:MAX_MESSAGE_CHARS],
                   str(hardware_id)[:MAX_NAME_CHARS], tuple(kept))


@dataclass(frozen=True)
class ComponentHealth:
    """A component as /health shows it.

    :param level: effective level name; 'STALE' once the status is older than
        ``stale_after`` or was never received.
    :param age_sec: seconds since the last status, ``None`` if never received.
    """

    name: str
    level: str
    message: str
    age_sec: float | None
    hardware_id: str = ''
    values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HealthReport:
    """Everything /health, /readyz, /livez and /metrics need, computed at one instant."""

    ok: bool
    ready: bool
    live: bool
    current_fps: float
    hands_detected: int
    uptime_seconds: float
    frames_processed: int
    last_frame_age_sec: float | None
    camera_state: str | None
    heartbeat_age_sec: float
    components: tuple[ComponentHealth, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    dropped_statuses: int
    device_id: str
    version: str
    stale_after: float
    git_hash: str = ''

    @property
    def status(self) -> str:
        """Return 'ok' or 'error'."""
        return 'ok' if self.ok else 'error'

    @property
    def http_code(self) -> int:
        """Return 200 when ok, 503 when error."""
        return 200 if self.ok else 503

    def to_dict(self) -> dict[str, Any]:
        """Return the /health JSON object."""
        return {
            'status': self.status,
            'current_fps': round(self.current_fps, 3),
            'hands_detected': self.hands_detected,
            'uptime_seconds': round(self.uptime_seconds, 3),
            'components': {
                c.name: {'level': c.level, 'message': c.message,
                         'age_sec': None if c.age_sec is None else round(c.age_sec, 3)}
                for c in self.components},
            'camera_state': self.camera_state,
            'frames_processed': self.frames_processed,
            'last_frame_age_sec': (None if self.last_frame_age_sec is None
                                   else round(self.last_frame_age_sec, 3)),
            'ready': self.ready,
            'reasons': list(self.reasons),
            'warnings': list(self.warnings),
            'stale_after_sec': self.stale_after,
            'device_id': self.device_id,
            'version': self.version,
            'git_hash': self.git_hash,
        }


@dataclass(frozen=True)
class _Component:
    report: ComponentReport
    received_at: float


@dataclass(frozen=True)
class _State:
    components: Mapping[str, _Component]
    camera_state: str | None = None
    camera_state_from_topic: bool = False
    frame_times: tuple[float, ...] = ()
    frames_total: int = 0
    last_hands: int = 0
    last_frame_at: float | None = None
    heartbeat_at: float = 0.0
    dropped_statuses: int = 0


class HealthModel:
    """Aggregate diagnostics, camera state and processed frames into a health verdict.

    :param config: the node's frozen config (stale_after, windows, caps).
    :param clock: monotonic seconds; injected so tests control time.
    :param device_id: reported in /health and metrics.
    :param version: software version reported in /health and metrics.
    :param git_hash: commit the code runs from ('' if unknown), for the OTA health gate.
    """

    def __init__(self, config: TelemetryConfig, clock: Callable[[], float] = time.monotonic,
                 device_id: str = '', version: str = '', git_hash: str = ''):
        self._config = config
        self._clock = clock
        self._device_id = device_id
        self._version = version
        self._git_hash = git_hash
        self._started = clock()
        self._write_lock = threading.Lock()
        self._frame_times: deque[float] = deque(maxlen=MAX_FRAME_TIMES)
        self._state = _State(components=MappingProxyType({}), heartbeat_at=self._started)
        # Names the operator configured: never capped nor forgotten (a bounded list).
        self._pinned = frozenset(config.required_components) | frozenset(
            config.advisory_components)

    @property
    def config(self) -> TelemetryConfig:
        """Return the config this model was built with."""
        return self._config

    # ---- writers (ROS callbacks) -------------------------------------------------

    def update_components(self, reports: Iterable[ComponentReport]) -> None:
        """Record the newest status of each component (one DiagnosticArray).

        Statuses silent for ``forget_after_sec`` that are not required or advisory are
        forgotten first, so a one-off or flooding publisher frees its slots. Required and
        advisory names are always kept; ``max_components`` caps the other names.
        """
        now = self._clock()
        cfg = self._config
        pinned = self._pinned
        with self._write_lock:
            state = self._state
            components = {name: comp for name, comp in state.components.items()
                          if name in pinned or now - comp.received_at <= cfg.forget_after_sec}
            others = sum(1 for name in components if name not in pinned)
            dropped = state.dropped_statuses
            camera_state = state.camera_state
            for report in reports:
                if report.name not in components and report.name not in pinned:
                    if others >= cfg.max_components:
                        dropped += 1
                        continue
                    others += 1
                components[report.name] = _Component(report, now)
                if report.name == CAMERA_STATUS and not state.camera_state_from_topic:
                    diag_state = dict(report.values).get('state')
                    if diag_state:
                        camera_state = diag_state[:MAX_STATE_CHARS]
            self._state = replace(state, components=MappingProxyType(components),
                                  dropped_statuses=dropped, camera_state=camera_state)

    def set_camera_state(self, camera_state: str) -> None:
        """Record the latched camera/state value (it wins over the diagnostics key)."""
        with self._write_lock:
            self._state = replace(self._state, camera_state=str(camera_state)[:MAX_STATE_CHARS],
                                  camera_state_from_topic=True)

    def record_frame(self, hands: int) -> None:
        """Record one processed frame and the number of hands found in it."""
        now = self._clock()
        with self._write_lock:
            self._frame_times.append(now)
            horizon = now - self._config.fps_window_sec
            while self._frame_times and self._frame_times[0] < horizon:
                self._frame_times.popleft()
            state = self._state
            self._state = replace(state, frame_times=tuple(self._frame_times),
                                  frames_total=state.frames_total + 1, last_hands=int(hands),
                                  last_frame_at=now)

    def heartbeat(self) -> None:
        """Record that the ROS executor still runs this node's callbacks."""
        now = self._clock()
        with self._write_lock:
            self._state = replace(self._state, heartbeat_at=now)

    # ---- reader (HTTP thread) ----------------------------------------------------

    def snapshot(self) -> HealthReport:
        """Compute the health report now; lock-free, safe from any thread."""
        state = self._state  # one atomic reference read: a consistent state
        now = self._clock()
        cfg = self._config
        reasons: list[str] = []
        warnings: list[str] = []

        if state.camera_state is None:
            reasons.append('camera state unknown: no camera/state message received')
        elif state.camera_state != STREAMING:
            reasons.append(f'camera is {state.camera_state}, not {STREAMING}')

        frame_age = None if state.last_frame_at is None else max(0.0, now - state.last_frame_at)
        if not cfg.require_frames:
            pass  # running without a detector: no hands/count is expected
        elif frame_age is None:
            reasons.append('no frame processed yet')
        elif frame_age > cfg.stale_after:
            reasons.append(f'no frame processed for {frame_age:.1f} s '
                           f'(stale_after {cfg.stale_after:g} s)')

        heartbeat_age = max(0.0, now - state.heartbeat_at)
        live = heartbeat_age <= cfg.liveness_timeout_sec
        if not live:
            reasons.append(f'ROS executor heartbeat missing for {heartbeat_age:.1f} s')

        components = []
        for name in sorted(set(state.components) | set(cfg.required_components)):
            comp = state.components.get(name)
            advisory = name in cfg.advisory_components
            required = name in cfg.required_components and not advisory
            # Required components decide the verdict; any other component only while it
            # freshly says ERROR. Advisory ones (debug recorder, OTA) never do: a full
            # debug disk must not page the fleet nor roll back a good OTA update.
            problems = reasons if required else warnings
            if comp is None:
                components.append(ComponentHealth(name, 'STALE', 'no diagnostics received',
                                                  None))
                problems.append(f'{name}: no diagnostics received')
                continue
            report = comp.report
            age = max(0.0, now - comp.received_at)
            if not (required or advisory) and age > cfg.forget_after_sec:
                continue  # a one-off publisher: forgotten (pruned on the next update)
            level = report.level if report.level in LEVEL_NAMES else ERROR
            if age > cfg.stale_after:
                level = STALE
                problems.append(f'{name}: no diagnostics for {age:.1f} s')
            elif level == STALE:
                problems.append(f'{name}: reported STALE: {report.message}')
            elif level == ERROR:
                (warnings if advisory else reasons).append(f'{name}: ERROR: {report.message}')
            elif level == WARN:
                warnings.append(f'{name}: WARN: {report.message}')
            components.append(ComponentHealth(name, level_name(level), report.message, age,
                                              report.hardware_id, report.values))

        fresh = frame_age is not None and frame_age <= cfg.stale_after
        return HealthReport(
            ok=not reasons,
            ready=(fresh or not cfg.require_frames) and state.camera_state == STREAMING,
            live=live,
            current_fps=_rate(state.frame_times, now, cfg.fps_window_sec),
            hands_detected=state.last_hands,
            uptime_seconds=max(0.0, now - self._started),
            frames_processed=state.frames_total,
            last_frame_age_sec=frame_age,
            camera_state=state.camera_state,
            heartbeat_age_sec=heartbeat_age,
            components=tuple(components),
            reasons=tuple(reasons),
            warnings=tuple(warnings),
            dropped_statuses=state.dropped_statuses,
            device_id=self._device_id,
            version=self._version,
            git_hash=self._git_hash,
            stale_after=cfg.stale_after,
        )


def _rate(times: tuple[float, ...], now: float, window: float) -> float:
    """Return events per second over ``window`` ending at ``now`` (decays when events stop).

    Same estimate as :class:`pianist_ros.common.rate.RateMeter`: intervals between the
    events in the window divided by the longer of their span and the time since the first.
    """
    recent = [t for t in times if now - t <= window]
    if len(recent) < 2:
        return 0.0
    span = max(now - recent[0], recent[-1] - recent[0])
    rate = (len(recent) - 1) / span if span > 0 else 0.0
    return rate if math.isfinite(rate) else 0.0


def numeric_values(values: Iterable[tuple[str, str]]) -> list[tuple[str, float]]:
    """Return the finite numeric key/value pairs of a status (for Prometheus gauges)."""
    out = []
    for key, text in values:
        try:
            number = float(text)
        except ValueError:
            if text in ('True', 'False'):
                out.append((key, 1.0 if text == 'True' else 0.0))
            continue
        if math.isfinite(number):
            out.append((key, number))
    return out
