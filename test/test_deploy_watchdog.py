"""The systemd watchdog: READY / WATCHDOG=1 while frames flow, silence when they stop.

The monitor talks to a unix datagram socket this test listens on, exactly as it talks to
systemd (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``). Frames come from real publishers over
DDS; the process tests run the real console scripts.
"""

import importlib.util
import os
import sys
import time
import uuid

from deploy_support import make_frame_publisher
from deploy_support import NotifyListener
import pytest

from support import spin_until
from support import start_process
from support import stop_process
from support import VENV_BIN
from support import wait_until

WATCHDOG_SEC = 2.0
#: The monitor pets at W/4 and counts a stream fresh for W/2; allow a loaded CPU 2 s more.
SILENCE_AFTER_SEC = WATCHDOG_SEC / 2 + WATCHDOG_SEC / 4 + 2.0


def _assert_pets_stop_and_resume(listener, stop, resume, spin):
    """Stop frames, check WATCHDOG=1 goes silent for good, resume, check it returns."""
    stopped_at = time.monotonic()
    stop()
    # After the grace period no pet may arrive for a full watchdog timeout and more.
    spin(SILENCE_AFTER_SEC)
    quiet_from = time.monotonic()
    spin(WATCHDOG_SEC * 1.5)
    late = [t for t in listener.times('WATCHDOG', '1') if t >= quiet_from]
    assert not late, f'{len(late)} WATCHDOG=1 after frames stopped'
    pets = listener.times('WATCHDOG', '1')
    assert pets and pets[-1] < stopped_at + SILENCE_AFTER_SEC
    assert any(s.startswith('STALLED') for s in listener.statuses()), listener.statuses()
    resume()
    resumed_at = time.monotonic()
    assert spin(lambda: any(t > resumed_at for t in listener.times('WATCHDOG', '1')), 20.0), \
        'WATCHDOG=1 did not resume with the frames'


def test_monitor_in_process_pets_only_while_frames_flow(ros_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor

    from pianist_ros.common.systemd import Notifier
    from pianist_ros.monitor import StackMonitorNode

    listener = NotifyListener(str(tmp_path / 'notify'))
    executor = SingleThreadedExecutor(context=ros_context)
    nodes = []
    try:
        monitor = StackMonitorNode(context=ros_context, period=0.5,
                                   notifier=Notifier(listener.address),
                                   watchdog_sec=WATCHDOG_SEC)
        nodes.append(monitor)
        publisher = make_frame_publisher(ros_context)
        nodes.append(publisher)
        for node in nodes:
            executor.add_node(node)

        def spin(arg, timeout=None):
            if callable(arg):
                return spin_until(executor, arg, timeout)
            return spin_until(executor, lambda: False, arg)

        # Nothing before frames: no READY, no pet (the start job would time out).
        publisher.on = False
        spin(1.0)
        assert not listener.times('READY') and not listener.times('WATCHDOG')
        publisher.on = True
        assert spin(lambda: listener.times('READY', '1'), 20.0), 'no READY=1'
        ready_at = listener.times('READY', '1')[0]
        assert spin(lambda: len(listener.times('WATCHDOG', '1')) >= 4, 20.0)
        assert listener.times('WATCHDOG', '1')[0] >= ready_at
        assert monitor.pets >= 4

        def stop():
            publisher.on = False

        def resume():
            publisher.on = True

        _assert_pets_stop_and_resume(listener, stop, resume, spin)
        # A dead detector alone (camera still streaming) also stops the pets.
        publisher.detector_on = False
        spin(SILENCE_AFTER_SEC)
        quiet_from = time.monotonic()
        spin(WATCHDOG_SEC)
        assert not [t for t in listener.times('WATCHDOG', '1') if t >= quiet_from]
        assert len(listener.times('READY', '1')) == 1
    finally:
        for node in reversed(nodes):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        wait_until(lambda: listener.times('STOPPING', '1'), 2.0)
        listener.close()
    assert listener.times('STOPPING', '1'), 'destroy_node did not send STOPPING=1'


def test_monitor_without_detector_watches_the_camera_only(ros_context, tmp_path):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from pianist_ros.common.systemd import Notifier
    from pianist_ros.monitor import StackMonitorNode

    listener = NotifyListener(f'@pianist-test-{uuid.uuid4().hex}')
    executor = SingleThreadedExecutor(context=ros_context)
    nodes = []
    try:
        monitor = StackMonitorNode(
            context=ros_context, period=0.0, notifier=Notifier(listener.address),
            watchdog_sec=WATCHDOG_SEC,
            parameter_overrides=[Parameter('require_detector', Parameter.Type.BOOL, False)])
        nodes.append(monitor)
        publisher = make_frame_publisher(ros_context)
        publisher.detector_on = False
        nodes.append(publisher)
        for node in nodes:
            executor.add_node(node)
        assert spin_until(executor, lambda: len(listener.times('WATCHDOG', '1')) >= 2, 20.0)
        assert listener.times('READY', '1')
    finally:
        for node in reversed(nodes):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        listener.close()


def test_monitor_without_notify_socket_sends_nothing(ros_context, monkeypatch):
    from pianist_ros.monitor import StackMonitorNode

    monkeypatch.delenv('NOTIFY_SOCKET', raising=False)
    monkeypatch.setenv('WATCHDOG_USEC', '1000000')
    monitor = StackMonitorNode(context=ros_context, period=5.0)
    try:
        assert monitor.watchdog_sec == 1.0
        assert 'camera' in monitor.status_line()
    finally:
        monitor.destroy_node()


def _process_env(listener, log_dir):
    return {'NOTIFY_SOCKET': listener.address, 'WATCHDOG_USEC': str(int(WATCHDOG_SEC * 1e6)),
            'RCUTILS_COLORIZED_OUTPUT': '0', 'PYTHONUNBUFFERED': '1',
            'RCUTILS_CONSOLE_OUTPUT_FORMAT': '[{severity}] [{name}]: {message}',
            'ROS_LOG_DIR': str(log_dir)}


def _stack_monitor_command() -> list[str]:
    # The console script appears once the venv is reinstalled (setup.py gained it after
    # the venv was built); `python -m` runs the very same main().
    path = os.path.join(VENV_BIN, 'stack_monitor')
    return [path] if os.path.exists(path) else [sys.executable, '-m', 'pianist_ros.monitor']


@pytest.mark.slow
def test_stack_monitor_process_pets_only_while_frames_flow(ros_context, tmp_path):
    """Run the stack_monitor console script (the launch deployment's watchdog)."""
    from rclpy.executors import SingleThreadedExecutor

    listener = NotifyListener(str(tmp_path / 'notify'))
    log = tmp_path / 'stack_monitor.log'
    proc = start_process(_stack_monitor_command(), str(log),
                         env=_process_env(listener, tmp_path))
    executor = SingleThreadedExecutor(context=ros_context)
    publisher = make_frame_publisher(ros_context)
    executor.add_node(publisher)

    def spin(arg, timeout=None):
        if callable(arg):
            return spin_until(executor, arg, timeout)
        return spin_until(executor, lambda: False, arg)

    try:
        assert spin(lambda: len(listener.times('WATCHDOG', '1')) >= 3, 40.0), \
            log.read_text(errors='replace')
        assert listener.times('READY', '1')

        def stop():
            publisher.on = False

        def resume():
            publisher.on = True

        _assert_pets_stop_and_resume(listener, stop, resume, spin)
        assert proc.poll() is None, 'the monitor must stay alive: systemd does the restart'
    finally:
        executor.remove_node(publisher)
        publisher.destroy_node()
        executor.shutdown()
        code = stop_process(proc)
        listener.close()
    assert code == 0
    assert listener.times('STOPPING', '1')
    text = log.read_text(errors='replace')
    # journald format: one line per message with level, node and message, no colours.
    assert '[INFO] [stack_monitor]: frames flowing: told systemd READY=1' in text
    assert '[ERROR] [stack_monitor]: STALLED' in text
    assert '\x1b[' not in text


def _pipeline_nodes_committed() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ('pianist_ros.camera.node', 'pianist_ros.detection.node'))


@pytest.mark.slow
@pytest.mark.skipif(not _pipeline_nodes_committed(),
                    reason='camera / hand_detector nodes not in the tree yet')
def test_bringup_process_pets_while_the_real_pipeline_runs(tmp_path):
    """Run pianist-bringup (synthetic camera + detector) as systemd would, then stop it."""
    from support import script

    listener = NotifyListener(str(tmp_path / 'notify'))
    log = tmp_path / 'bringup.log'
    env = _process_env(listener, tmp_path)
    proc = start_process([script('pianist-bringup'), '--source', 'synthetic', '--no-telemetry',
                          '--status-period', '1'], str(log), env=env)
    try:
        assert wait_until(lambda: len(listener.times('WATCHDOG', '1')) >= 3, 90.0), \
            log.read_text(errors='replace')[-4000:]
        ready = listener.times('READY', '1')
        assert ready and ready[0] <= listener.times('WATCHDOG', '1')[0]
        assert proc.poll() is None
    finally:
        code = stop_process(proc, timeout=20.0)
        listener.close()
    assert code == 0
    assert listener.times('STOPPING', '1')
    assert os.path.getsize(log) > 0
