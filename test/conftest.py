"""Shared test setup: loopback-only DDS on a run-unique domain, data, rclpy contexts."""

import os
import random

# Must happen before any rclpy import: DDS stays on loopback and this run gets its own
# domain, so parallel runs (and a stack a developer runs) never see each other.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
if 'PIANIST_TEST_DOMAIN_ID' in os.environ:
    os.environ['ROS_DOMAIN_ID'] = os.environ['PIANIST_TEST_DOMAIN_ID']
else:
    os.environ['ROS_DOMAIN_ID'] = str(random.Random(os.getpid()).randint(1, 100))
os.environ['PIANIST_TEST_DOMAIN_ID'] = os.environ['ROS_DOMAIN_ID']
os.environ.setdefault('PYTHONUNBUFFERED', '1')

import pytest  # noqa: E402

from support import data_dir as _data_dir  # noqa: E402
from support import load_manifest  # noqa: E402


@pytest.fixture(scope='session')
def data_dir():
    """Return the hands test-data directory (skip outside CI, fail in CI, if missing)."""
    return _data_dir()


@pytest.fixture(scope='session')
def manifest(data_dir):
    """Return MANIFEST.csv rows as dicts keyed by file name."""
    return load_manifest(data_dir)


@pytest.fixture
def ros_context():
    """Yield a private, initialised rclpy Context; shut it down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def _stray_threads() -> list:
    import threading
    return [t for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()]


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when a test left a non-daemon thread behind.

    Python waits for such threads before the process exits; one asleep in a long wait
    once held a finished suite open for an hour. Name them, fail, and exit at once.
    """
    import time
    deadline = time.monotonic() + 5.0
    while _stray_threads() and time.monotonic() < deadline:
        time.sleep(0.1)
    stray = _stray_threads()
    if not stray:
        return
    names = ', '.join(sorted(t.name for t in stray))
    reporter = session.config.pluginmanager.get_plugin('terminalreporter')
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(f'ERROR: non-daemon threads left running by tests: {names}', red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config._pianist_stray_threads = True


def pytest_unconfigure(config):
    """Exit without waiting for threads named in pytest_sessionfinish (they never end)."""
    if getattr(config, '_pianist_stray_threads', False):
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(pytest.ExitCode.TESTS_FAILED))
