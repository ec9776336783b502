r"""The OTA state machine: check, verify, apply, restart, health-gate, commit or roll back.

Every step that must survive the manager being killed (the restart of the service
restarts the manager too) is saved in :class:`~pianist_ros.ota.state.OtaState` before
it is taken, and :meth:`OtaManager.check_once` resumes an unfinished update first::

    IDLE -> APPLYING -> HEALTH_CHECK -> IDLE                      (updated)
                              \-> ROLLING_BACK -> ROLLBACK_HEALTH_CHECK -> IDLE
                                                   (rolled_back / rollback_failed)
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import os
import random
import threading
from typing import Any

from pianist_ros.ota.clock import Clock
from pianist_ros.ota.clock import SystemClock
from pianist_ros.ota.config import OtaConfig
from pianist_ros.ota.errors import DirtyTreeError
from pianist_ros.ota.errors import GitError
from pianist_ros.ota.errors import OtaError
from pianist_ros.ota.errors import RestartError
from pianist_ros.ota.errors import StateError
from pianist_ros.ota.fetcher import FetcherInterface
from pianist_ros.ota.fetcher import UrllibFetcher
from pianist_ros.ota.git import GitRepo
from pianist_ros.ota.manifest import in_cohort
from pianist_ros.ota.manifest import load_public_key
from pianist_ros.ota.manifest import Manifest
from pianist_ros.ota.manifest import verify
from pianist_ros.ota.reports import make_report
from pianist_ros.ota.reports import ReportQueue
from pianist_ros.ota.service import ServiceRestarter
from pianist_ros.ota.service import wait_healthy
from pianist_ros.ota.state import OtaState
from pianist_ros.ota.state import Phase
from pianist_ros.ota.state import StateStore
from pianist_ros.ota.versions import decide
from pianist_ros.ota.versions import Decision

logger = logging.getLogger(__name__)

#: Outcomes that are routine and never reported (every poll would produce one).
_QUIET = frozenset({'up_to_date', 'not_in_cohort', 'disabled', 'interrupted'})
#: Outcomes that leave the device worse off than it should be (diagnostics ERROR).
ERROR_RESULTS = frozenset({'rollback_failed', 'state_error', 'key_invalid', 'git_error'})
#: Outcomes that are a decision, not a failure: logged at INFO.
_REFUSALS = frozenset({'refused_downgrade', 'prerelease_skipped', 'skipped_failed_hash',
                       'not_in_cohort'})
#: The same failure is logged again at most this often (a check may run every minute).
LOG_THROTTLE_SEC = 600.0


@dataclass(frozen=True)
class Outcome:
    """The result of one check (or resumed update)."""

    result: str
    error: str = ''
    from_version: str = ''
    to_version: str = ''


class OtaManager:
    """Run OTA checks against one repository, service and manifest URL.

    :param config: the frozen settings.
    :param fetcher: HTTP transport (default: urllib).
    :param clock: time source (default: the system clock).
    :param rng: randomness for jitter (default: a fresh ``random.Random``).
    :raises KeyLoadError: the pinned key is invalid (when OTA is enabled).
    :raises ValueError: the restart command or repository path is invalid.
    """

    def __init__(self, config: OtaConfig, fetcher: FetcherInterface | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None):
        self.config = config
        self._fetcher = fetcher or UrllibFetcher()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._device_id = config.resolved_device_id()
        self._key = load_public_key(config.public_key) if config.enabled else None
        self._repo = GitRepo(config.resolved_repo_dir(), config.git_remote,
                             config.git_timeout_sec)
        self._restarter = ServiceRestarter(config.restart_command, config.service_name,
                                           config.restart_timeout_sec)
        state_dir = config.resolved_state_dir()
        self._store = StateStore(state_dir)
        self._queue = ReportQueue(os.path.join(state_dir, 'reports'),
                                  config.max_pending_reports)
        self._run_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._state = self._store.load()
        self._checks = 0
        self._report_error = ''
        self._warned: dict[str, float] = {}
        self._status: dict[str, Any] = {}
        self._publish_status()

    # ---- public API -----------------------------------------------------------------

    @property
    def state(self) -> OtaState:
        """Return the live persisted fields (read them from the checker thread only)."""
        return self._state

    def status(self) -> dict[str, Any]:
        """Return a snapshot for diagnostics; safe to call from any thread."""
        with self._status_lock:
            return dict(self._status)

    def resume_pending(self) -> bool:
        """Return whether an interrupted update waits to be finished."""
        return self._state.phase != Phase.IDLE

    def check_once(self, stop: threading.Event | None = None) -> Outcome:
        """Finish an interrupted update if any, else check the manifest once.

        Also flushes queued reports. Never raises an :class:`OtaError`: failures are the
        outcome (and reported).

        :param stop: set to abandon a health check; the update then resumes next start.
        """
        stop = stop or threading.Event()
        with self._run_lock:
            try:
                if self._state.phase != Phase.IDLE:
                    outcome = self._resume(stop)
                elif not self.config.enabled:
                    outcome = Outcome('disabled', 'manifest_url or public_key not set')
                else:
                    outcome = self._check(stop)
            except StateError as exc:
                outcome = Outcome(exc.code, str(exc))
            self._checks += 1
            self._state.last_check_time = self._clock.time()
            self._state.last_result = outcome.result
            self._state.last_error = outcome.error
            self._flush_reports()
            self._save_quietly()
            self._publish_status()
            self._log_outcome(outcome)
            return outcome

    def flush_reports(self) -> int:
        """Send queued reports now; return how many were delivered."""
        with self._run_lock:
            sent = self._flush_reports()
            self._publish_status()
            return sent

    def next_delay(self) -> float:
        """Return seconds until the next check: the interval plus or minus the jitter."""
        jitter = self.config.poll_jitter_sec
        return max(0.0, self.config.poll_interval_sec + self._rng.uniform(-jitter, jitter))

    def startup_delay(self) -> float:
        """Return the random delay before the first check (none when resuming)."""
        if self.resume_pending():
            return 0.0
        return self._rng.uniform(0.0, self.config.startup_jitter_sec)

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Check forever at the poll interval until ``stop`` is set.

        :param wake: set it to check now (the node's ``~/check_now`` service); setting
            ``stop`` should also set ``wake`` to end the wait at once. Without ``wake``
            the wait is on ``stop`` itself, so setting ``stop`` always ends it promptly.
        """
        delay = self.startup_delay()
        cfg = self.config
        if cfg.enabled:
            logger.info('OTA checker started: manifest %s, every %g s (+/- %g s), first '
                        'check in %.0f s', cfg.manifest_url, cfg.poll_interval_sec,
                        cfg.poll_jitter_sec, delay)
        else:
            logger.info('OTA checker idle: manifest_url or public_key is empty')
        while not stop.is_set():
            if wake is None:
                stop.wait(delay)
            else:
                wake.wait(delay)
                wake.clear()
            if stop.is_set():
                break
            self.check_once(stop)
            delay = self.next_delay()

    # ---- the check ------------------------------------------------------------------

    def _check(self, stop: threading.Event) -> Outcome:
        state = self._state
        try:
            raw = self._fetcher.fetch(self.config.manifest_url, self.config.request_timeout_sec,
                                      self.config.max_manifest_bytes)
            manifest = verify(raw, self._key, self._clock.time(), state.last_sequence,
                              state.last_digest)
        except OtaError as exc:
            return self._finish(exc.code, str(exc))
        # Authentic: raise the replay floor even if the offer is refused below.
        state.last_sequence = manifest.sequence
        state.last_digest = manifest.digest
        self._store.save(state)
        if not in_cohort(self._device_id, manifest):
            return Outcome('not_in_cohort', to_version=manifest.version)
        try:
            current = self._current_version()
            decision = decide(current, manifest.version, self.config.allow_prerelease)
        except OtaError as exc:
            return self._finish(exc.code, str(exc), manifest)
        if decision is Decision.SAME:
            return Outcome('up_to_date', from_version=current or '',
                           to_version=manifest.version)
        if decision is Decision.DOWNGRADE:
            return self._finish('refused_downgrade',
                                f'offered {manifest.version} is older than {current}', manifest)
        if decision is Decision.PRERELEASE_SKIPPED:
            return self._finish('prerelease_skipped',
                                f'{manifest.version} is a pre-release', manifest)
        if manifest.git_hash in state.failed_hashes:
            return self._finish('skipped_failed_hash',
                                f'{manifest.git_hash} failed its health check before',
                                manifest)
        return self._start_update(manifest, current or '', stop)

    def _current_version(self) -> str | None:
        state = self._state
        head = self._repo.head()
        if state.current_hash != head or not state.current_version:
            # First run, or someone moved HEAD by hand: trust the tag on HEAD if any.
            state.current_version = self._repo.describe_version() or ''
            state.current_hash = head
        return state.current_version or None

    def _start_update(self, manifest: Manifest, current: str, stop: threading.Event
                      ) -> Outcome:
        state = self._state
        try:
            head = self._repo.head()
            dirty = self._repo.dirty_files()
            if dirty:
                raise DirtyTreeError('working tree has local changes: '
                                     + ', '.join(dirty[:5]))
            self._repo.fetch_commit(manifest.git_hash)
        except OtaError as exc:
            return self._finish(exc.code, str(exc), manifest)
        state.phase = Phase.APPLYING
        state.previous_version, state.previous_hash = current, head
        state.target_version, state.target_hash = manifest.version, manifest.git_hash
        state.update_started_at = self._clock.time()
        state.attempts = 1
        state.failure = ''
        self._store.save(state)
        logger.info('updating %s (%s) -> %s (%s)', current, head[:12], manifest.version,
                    manifest.git_hash[:12])
        return self._apply(stop)

    # ---- the update, in resumable steps ---------------------------------------------

    def _resume(self, stop: threading.Event) -> Outcome:
        state = self._state
        logger.info('resuming update to %s in phase %s', state.target_version,
                    state.phase.value)
        try:
            self._repo.clear_stale_lock()
        except GitError as exc:
            logger.warning('%s', exc)
        if state.phase in (Phase.APPLYING, Phase.HEALTH_CHECK):
            state.attempts += 1
            self._store.save(state)
            if state.attempts > self.config.max_apply_attempts:
                return self._rollback(f'update interrupted {state.attempts - 1} times', stop)
            if state.phase == Phase.APPLYING:
                return self._apply(stop)
            return self._health_gate(stop)
        if state.phase == Phase.ROLLING_BACK:
            return self._rollback(state.failure, stop)
        return self._rollback_gate(stop)

    def _apply(self, stop: threading.Event) -> Outcome:
        state = self._state
        try:
            self._repo.checkout(state.target_hash)
        except OtaError as exc:
            return self._abort_apply(exc)
        state.phase = Phase.HEALTH_CHECK
        self._store.save(state)
        try:
            self._restarter.restart()
        except RestartError as exc:
            return self._rollback(str(exc), stop)
        return self._health_gate(stop)

    def _abort_apply(self, exc: OtaError) -> Outcome:
        """Leave the device on the previous commit after a failed checkout."""
        state = self._state
        error = str(exc)
        try:
            if self._repo.head() != state.previous_hash:
                self._repo.checkout(state.previous_hash)
        except OtaError as again:
            error += f'; restoring {state.previous_hash[:12]} failed: {again}'
        return self._end_update(exc.code, error, committed=False)

    def _health_gate(self, stop: threading.Event) -> Outcome:
        healthy, detail = self._wait_healthy(stop, self._state.target_hash)
        if healthy is None:
            return Outcome('interrupted', detail)
        if healthy:
            return self._end_update('updated', '', committed=True)
        return self._rollback(f'health check failed: {detail}', stop)

    def _rollback(self, reason: str, stop: threading.Event) -> Outcome:
        state = self._state
        if state.phase != Phase.ROLLING_BACK:
            state.phase = Phase.ROLLING_BACK
            state.failure = reason
            state.mark_failed(state.target_hash)
            self._store.save(state)
        logger.warning('rolling back to %s: %s', state.previous_hash[:12], reason)
        try:
            self._repo.checkout(state.previous_hash)
        except OtaError as exc:
            return self._end_update('rollback_failed', f'{reason}; checkout: {exc}',
                                    committed=False)
        state.phase = Phase.ROLLBACK_HEALTH_CHECK
        self._store.save(state)
        try:
            self._restarter.restart()
        except RestartError as exc:
            return self._end_update('rollback_failed', f'{reason}; restart: {exc}',
                                    committed=False)
        return self._rollback_gate(stop)

    def _rollback_gate(self, stop: threading.Event) -> Outcome:
        reason = self._state.failure
        healthy, detail = self._wait_healthy(stop, self._state.previous_hash)
        if healthy is None:
            return Outcome('interrupted', detail)
        if healthy:
            return self._end_update('rolled_back', reason, committed=False)
        return self._end_update('rollback_failed', f'{reason}; after rollback: {detail}',
                                committed=False)

    def _wait_healthy(self, stop: threading.Event, expected_hash: str
                      ) -> tuple[bool | None, str]:
        cfg = self.config
        try:
            return wait_healthy(self._fetcher, cfg.health_url, self._clock,
                                cfg.health_timeout_sec, cfg.health_poll_interval_sec,
                                cfg.health_ok_streak, cfg.request_timeout_sec, stop,
                                expected_hash)
        except InterruptedError as exc:
            return None, str(exc)

    def _end_update(self, result: str, error: str, committed: bool) -> Outcome:
        state = self._state
        from_version, to_version = state.previous_version, state.target_version
        from_hash, to_hash = state.previous_hash, state.target_hash
        if committed:
            state.current_version, state.current_hash = to_version, to_hash
        else:
            state.current_version, state.current_hash = from_version, from_hash
        self._queue_report(result, error, from_version, from_hash, to_version, to_hash,
                           state.update_started_at)
        state.phase = Phase.IDLE
        state.target_version = state.target_hash = state.failure = ''
        state.attempts = 0
        self._store.save(state)
        log = logger.info if result == 'updated' else logger.warning
        log('update %s -> %s: %s %s', from_version, to_version, result, error)
        return Outcome(result, error, from_version, to_version)

    # ---- reports --------------------------------------------------------------------

    def _finish(self, result: str, error: str, manifest: Manifest | None = None) -> Outcome:
        """End a check without an update: report it unless routine or a repeat."""
        state = self._state
        to_version = manifest.version if manifest else ''
        to_hash = manifest.git_hash if manifest else ''
        if result not in _QUIET:
            key = f'{result}|{to_hash}|{error}'
            if key != state.last_report_key:
                self._queue_report(result, error, state.current_version, state.current_hash,
                                   to_version, to_hash, self._clock.time())
                state.last_report_key = key
        return Outcome(result, error, state.current_version, to_version)

    def _queue_report(self, result: str, error: str, from_version: str, from_hash: str,
                      to_version: str, to_hash: str, started_at: float) -> None:
        report = make_report(self._device_id, result, from_version=from_version,
                             from_hash=from_hash, to_version=to_version, to_hash=to_hash,
                             error=error, started_at=started_at,
                             finished_at=self._clock.time())
        if result in ('updated', 'rolled_back', 'rollback_failed'):
            self._state.last_report_key = ''
        try:
            self._queue.put(report)
        except StateError as exc:
            logger.warning('cannot queue report %s: %s', result, exc)
        self._state.reports_dropped += self._queue.dropped
        self._queue.dropped = 0

    def _flush_reports(self) -> int:
        try:
            sent, error = self._queue.flush(self._fetcher, self.config.report_url,
                                            self.config.request_timeout_sec)
        except StateError as exc:
            sent, error = 0, str(exc)
        self._report_error = error
        self._state.report_error = error
        if error and self.config.report_url:
            self._warn_throttled('report', f'cannot deliver queued OTA reports to '
                                 f'{self.config.report_url}: {error}')
        elif sent:
            logger.info('delivered %d OTA report(s)', sent)
        return sent

    def _log_outcome(self, outcome: Outcome) -> None:
        """Log each check's result: INFO for decisions, WARN (throttled) for failures."""
        result, error = outcome.result, outcome.error
        if result == 'up_to_date':
            logger.info('OTA check: no update (running %s)', outcome.to_version or '?')
        elif result == 'updated':
            logger.info('OTA check: updated %s -> %s', outcome.from_version,
                        outcome.to_version)
        elif result in _REFUSALS:
            logger.info('OTA check: refused %s (%s): %s', outcome.to_version or '?', result,
                        error or 'not in the rollout cohort')
        elif result in ('disabled', 'interrupted'):
            logger.debug('OTA check: %s %s', result, error)
        else:
            self._warn_throttled(result, f'OTA check failed: {result}: {error}')

    def _warn_throttled(self, key: str, text: str) -> None:
        """Log ``text`` at WARN unless the same text was logged within the throttle."""
        now = self._clock.monotonic()
        last = self._warned.get(key + text)
        if last is not None and now - last < LOG_THROTTLE_SEC:
            return
        if len(self._warned) > 100:
            self._warned.clear()
        self._warned[key + text] = now
        logger.warning('%s', text)

    # ---- bookkeeping ----------------------------------------------------------------

    def _save_quietly(self) -> None:
        try:
            self._store.save(self._state)
        except StateError as exc:
            logger.warning('%s', exc)

    def _publish_status(self) -> None:
        state = self._state
        try:
            pending = self._queue.pending()
        except StateError:
            pending = -1
        with self._status_lock:
            self._status = {
                'enabled': self.config.enabled,
                'phase': state.phase.value,
                'current_version': state.current_version,
                'current_hash': state.current_hash,
                'target_version': state.target_version,
                'last_check_time': state.last_check_time,
                'last_result': state.last_result,
                'last_error': state.last_error,
                'last_sequence': state.last_sequence,
                'pending_reports': pending,
                'reports_dropped': state.reports_dropped,
                'report_error': self._report_error,
                'failed_hashes': len(state.failed_hashes),
                'checks': self._checks,
                'device_id': self._device_id,
            }
