"""Restart the service through a configured command, then gate on its /health endpoint."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import threading

from pianist_ros.ota.clock import Clock
from pianist_ros.ota.errors import FetchError
from pianist_ros.ota.errors import RestartError
from pianist_ros.ota.fetcher import FetcherInterface

logger = logging.getLogger(__name__)

_MAX_HEALTH_BYTES = 65536


class ServiceRestarter:
    """Run ``restart_command`` (``{service}`` substituted, no shell) with a timeout."""

    def __init__(self, command: str, service: str, timeout: float):
        try:
            self.argv = [part.replace('{service}', service) for part in shlex.split(command)]
        except ValueError as exc:
            raise ValueError(f'restart_command cannot be parsed: {exc}') from exc
        if not self.argv:
            raise ValueError('restart_command is empty')
        self.timeout = timeout

    def restart(self) -> None:
        """Run the command and wait for it.

        When the manager runs inside the restarted service, systemd kills it during this
        call; the caller has persisted its state before, and the next start resumes.

        :raises RestartError: the command failed, timed out or could not start.
        """
        try:
            result = subprocess.run(self.argv, stdin=subprocess.DEVNULL, capture_output=True,
                                    timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise RestartError(f'{self.argv[0]} timed out after {self.timeout:g} s') from exc
        except OSError as exc:
            raise RestartError(f'cannot run {self.argv[0]}: {exc}') from exc
        if result.returncode != 0:
            err = result.stderr[:1000].decode('utf-8', 'replace').strip()
            raise RestartError(f'{" ".join(self.argv)} exited {result.returncode}: {err}')


def check_health(fetcher: FetcherInterface, url: str, timeout: float,
                 expected_hash: str = '') -> tuple[bool, str]:
    """Ask ``url`` once; return ``(ok, detail)``; never raises.

    Healthy means HTTP 200 and a JSON object with ``"status": "ok"``. When the body also
    carries ``git_hash``, it must be ``expected_hash``: that tells a fresh process apart
    from the old one still answering before the restart has taken effect.
    """
    try:
        response = fetcher.request('GET', url, timeout=timeout, max_bytes=_MAX_HEALTH_BYTES)
    except FetchError as exc:
        return False, str(exc)
    try:
        body = json.loads(response.body.decode('utf-8')) if response.body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = {}
    status = body.get('status') if isinstance(body, dict) else None
    if response.status != 200 or status != 'ok':
        detail = f'HTTP {response.status}, status {status!r}'
        reasons = body.get('reasons') if isinstance(body, dict) else None
        if isinstance(reasons, list) and reasons:
            # /health names the failing checks: the rollback report must carry them.
            detail += ': ' + '; '.join(str(r)[:200] for r in reasons[:10])
        return False, detail
    reported = body.get('git_hash')
    if expected_hash and isinstance(reported, str) and reported and reported != expected_hash:
        return False, f'health reports git_hash {reported[:12]}, expected {expected_hash[:12]}'
    return True, 'ok'


def wait_healthy(fetcher: FetcherInterface, url: str, clock: Clock, timeout: float,
                 poll_interval: float, ok_streak: int, request_timeout: float,
                 stop: threading.Event, expected_hash: str = '') -> tuple[bool, str]:
    """Poll ``url`` until ``ok_streak`` consecutive ok answers or ``timeout`` seconds.

    :param stop: set to abandon the wait (the node is shutting down).
    :return: ``(healthy, detail)``; detail is the last failure when not healthy.
    :raises InterruptedError: ``stop`` was set before a verdict.
    """
    deadline = clock.monotonic() + timeout
    streak = 0
    detail = 'no answer'
    while True:
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return False, f'not healthy within {timeout:g} s: {detail}'
        ok, why = check_health(fetcher, url, max(0.05, min(request_timeout, remaining)),
                               expected_hash)
        if ok:
            streak += 1
            if streak >= ok_streak:
                return True, 'ok'
        else:
            streak = 0
            detail = why
        if stop.wait(max(0.0, min(poll_interval, deadline - clock.monotonic()))):
            raise InterruptedError('stopped during the health check')
