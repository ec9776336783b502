"""Helpers shared by tests: data location, deadline-based spinning, processes, ports."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import data_location

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)


def data_dir() -> str:
    """Locate ../shared/data/hands (or $PIANIST_TEST_DATA).

    Outside CI a missing directory skips the test with the reason; in CI
    (``CI=true``) it fails, so a broken checkout can never pass by skipping.
    """
    path = data_location.hands_data(REPO)
    if path:
        return path
    reason = (f'hand test data not found (looked in {data_location.candidates(REPO)}); '
              'set PIANIST_TEST_DATA')
    if os.environ.get('CI', '').lower() == 'true':
        pytest.fail(reason)
    pytest.skip(reason)


def load_manifest(path: str) -> dict[str, dict]:
    """Return MANIFEST.csv rows keyed by file name."""
    with open(os.path.join(path, 'MANIFEST.csv'), newline='', encoding='utf-8') as handle:
        return {row['file']: row for row in csv.DictReader(handle)}


def image_rows(manifest: dict[str, dict]) -> list[dict]:
    """Return the manifest rows that are still images."""
    return [row for name, row in manifest.items() if name.lower().endswith(('.jpg', '.png'))]


def spin_until(executor, predicate, timeout: float, step: float = 0.05) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step)
    return bool(predicate())


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate()`` (no spinning) until true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def script(name: str) -> str:
    """Return the path of one of the package's console scripts in this venv."""
    path = os.path.join(VENV_BIN, name)
    if not os.path.exists(path):
        pytest.fail(f'console script {name} is not installed in {VENV_BIN}')
    return path


def start_process(args: list[str], log_path: str | None = None, **kwargs) -> subprocess.Popen:
    """Start a process in its own process group, output to ``log_path`` (or DEVNULL)."""
    out = open(log_path, 'wb') if log_path else subprocess.DEVNULL  # noqa: SIM115
    env = dict(os.environ)
    env.update(kwargs.pop('env', {}) or {})
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, **kwargs)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Signal a process group and wait; SIGKILL it if it does not exit in ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode
