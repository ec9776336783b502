"""The systemd watchdog: READY / WATCHDOG=1 while frames flow, silence when they stop.

The monitor talks to a unix datagram socket this test listens on, exactly as it talks to
systemd (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``). Frames come from real publishers over
DDS; the process tests run the real console scripts.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from deploy_support import make_frame_publisher
from deploy_support import NotifyListener
from support import REPO
from support import spin_until
from support import start_process
from support import stop_process
from support import VENV_BIN
from support import wait_until

WATCHDOG_SEC = 2.0
RELAY = os.path.join(REPO, 'docker', 'sd_notify_relay.py')
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
            'ROS_LOG_DIR': str(log_dir),
            # The venv's editable install resolves the package only with the tree on the path.
            'PYTHONPATH': os.pathsep.join(p for p in (REPO, os.environ.get('PYTHONPATH')) if p)}


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
                         env=_process_env(listener, tmp_path), cwd=REPO)
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
def test_bringup_process_stops_petting_when_the_camera_stops(ros_context, tmp_path):
    """Run pianist-bringup as systemd would; stop the camera, keep the process alive."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from support import script

    listener = NotifyListener(str(tmp_path / 'notify'))
    log = tmp_path / 'bringup.log'
    env = _process_env(listener, tmp_path)
    proc = start_process([script('pianist-bringup'), '--source', 'synthetic', '--no-telemetry',
                          '--status-period', '1',
                          '--config', os.path.join(REPO, 'config', 'pianist.yaml')],
                         str(log), env=env, cwd=REPO)
    client_node = Node('deploy_lifecycle_client', context=ros_context)
    change_state = client_node.create_client(ChangeState, 'camera/change_state')
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(client_node)

    def spin(arg, timeout=None):
        if callable(arg):
            return spin_until(executor, arg, timeout)
        return spin_until(executor, lambda: False, arg)

    def transition(transition_id):
        future = change_state.call_async(ChangeState.Request(
            transition=Transition(id=transition_id)))
        assert spin(future.done, 30.0) and future.result().success, transition_id

    try:
        assert spin(lambda: len(listener.times('WATCHDOG', '1')) >= 3, 90.0), \
            log.read_text(errors='replace')[-4000:]
        ready = listener.times('READY', '1')
        assert len(ready) == 1 and ready[0] <= listener.times('WATCHDOG', '1')[0]
        assert spin(lambda: change_state.service_is_ready(), 30.0)
        # An operator (or a fault) stops the camera: the process lives, frames stop.
        _assert_pets_stop_and_resume(
            listener, lambda: transition(Transition.TRANSITION_DEACTIVATE),
            lambda: transition(Transition.TRANSITION_ACTIVATE), spin)
        assert proc.poll() is None
    finally:
        executor.remove_node(client_node)
        client_node.destroy_node()
        executor.shutdown()
        # SIGTERM to the main process only, as KillMode=mixed in pianist-venv.service does.
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30.0)
        except subprocess.TimeoutExpired:
            pass
        code = stop_process(proc, sig=signal.SIGKILL) if proc.poll() is None else proc.returncode
        listener.close()
    text = log.read_text(errors='replace')
    assert code == 0, text[-4000:]
    assert listener.times('STOPPING', '1')
    assert '[INFO] [stack_monitor]: frames flowing: told systemd READY=1' in text
    assert 'frames flowing again' in text


def _relay_module():
    spec = importlib.util.spec_from_file_location('sd_notify_relay', RELAY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_relay_drops_fields_the_container_may_not_set():
    relay = _relay_module()
    assert relay.filter_message(b'READY=1\nMAINPID=7\nSTATUS=ok') == b'READY=1\nSTATUS=ok'
    assert relay.filter_message(b'MAINPID=7') is None
    assert relay.filter_message(b'garbage') is None


def test_relay_hands_the_watchdog_only_when_it_is_ours():
    relay = _relay_module()
    env = relay.child_environment({'WATCHDOG_USEC': '30000000', 'WATCHDOG_PID': '10',
                                   'NOTIFY_SOCKET': '/run/systemd/notify'}, '/run/p.sock', 10)
    assert env == {'WATCHDOG_USEC': '30000000', 'NOTIFY_SOCKET': '/run/p.sock'}
    env = relay.child_environment({'WATCHDOG_USEC': '30000000', 'WATCHDOG_PID': '11'},
                                  '/run/p.sock', 10)
    assert 'WATCHDOG_USEC' not in env and 'WATCHDOG_PID' not in env


@pytest.mark.slow
def test_relay_forwards_the_monitors_watchdog_like_the_docker_unit(ros_context, tmp_path):
    """pianist.service's chain without Docker: systemd <- relay <- monitor process."""
    from rclpy.executors import SingleThreadedExecutor

    listener = NotifyListener(str(tmp_path / 'systemd-notify'))
    inner = str(tmp_path / 'container-notify.sock')
    log = tmp_path / 'relay.log'
    env = _process_env(listener, tmp_path)
    env['WATCHDOG_PID'] = '1'  # not the relay's: it must not hand the watchdog on
    proc_no_wd = start_process([sys.executable, RELAY, '--socket', inner + '.x', '--',
                                sys.executable, '-c',
                                'import os; print(os.environ.get("WATCHDOG_USEC", "none"))'],
                               str(tmp_path / 'nowd.log'), env=env, cwd=REPO)
    assert proc_no_wd.wait(30) == 0
    assert (tmp_path / 'nowd.log').read_text().strip() == 'none'

    env.pop('WATCHDOG_PID')
    proc = start_process([sys.executable, RELAY, '--socket', inner, '--',
                          *_stack_monitor_command()], str(log), env=env, cwd=REPO)
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
        assert oct(os.stat(inner).st_mode & 0o777) == '0o600'

        def stop():
            publisher.on = False

        def resume():
            publisher.on = True

        _assert_pets_stop_and_resume(listener, stop, resume, spin)
    finally:
        executor.remove_node(publisher)
        publisher.destroy_node()
        executor.shutdown()
        # SIGTERM to the relay alone (as KillMode=mixed does): it must pass it on.
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20.0)
        except subprocess.TimeoutExpired:
            pass
        code = stop_process(proc, sig=signal.SIGKILL) if proc.poll() is None else proc.returncode
        listener.close()
    # SIGTERM reached the monitor through the relay: clean exit, STOPPING=1 forwarded.
    assert code == 0, log.read_text(errors='replace')
    assert listener.times('STOPPING', '1')
    assert not os.path.exists(inner)
