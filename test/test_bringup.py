"""pianist-bringup as a real process: the clip through camera -> DDS -> detector.

The test process listens on the same (run-unique, loopback-only) DDS domain.
"""

import os
import signal
import subprocess
import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Int32

from pianist_ros.bringup import main
from pianist_ros.bringup import namespace_error
from pianist_ros.bringup import parse_args
from pianist_ros.bringup import stack_overrides
from pianist_ros.common import topics
from support import script
from support import spin_until
from support import start_process
from support import stop_process


def test_parse_args_defaults_and_switches():
    args, ros_args = parse_args(['--source', 'x.mp4', '--no-telemetry', '--recorder',
                                 '--no-detector', '--ros-args', '-r', '__ns:=/a'])
    assert args.source == 'x.mp4'
    assert args.with_telemetry_bridge is False
    assert args.with_image_recorder is True
    assert args.with_hand_detector is False
    assert args.with_ota_manager is False
    assert parse_args([])[0].with_hand_detector is True
    assert ros_args == ['--ros-args', '-r', '__ns:=/a']


@pytest.mark.parametrize('argv', [['--status-period', '-1'], ['--duration', '-5'],
                                  ['--duration', 'nan'], ['--status-period', 'x']])
def test_bad_option_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2
    assert 'usage: pianist-bringup' in capsys.readouterr().err


def test_bad_namespace_exits_2_with_the_reason(capsys):
    assert namespace_error('robot_1') == namespace_error('/a/b') == ''
    assert main(['--namespace', 'bad-ns!']) == 2
    err = capsys.readouterr().err
    assert "invalid --namespace 'bad-ns!'" in err and 'alphanumerics' in err


def test_stack_overrides_without_detector_require_only_the_camera():
    assert stack_overrides('telemetry_bridge', True) == {}
    assert stack_overrides('telemetry_bridge', False) == {
        'required_components': ['camera: camera'], 'require_frames': False}
    assert stack_overrides('camera', False) == {}


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=['SIGTERM', 'SIGINT', 'SIGHUP'])
def test_clip_through_bringup_yields_hands_and_stops_cleanly(ros_context, data_dir, tmp_path,
                                                             sig):
    clip = os.path.join(data_dir, 'hands_clip.mp4')
    log = tmp_path / 'bringup.log'
    proc = start_process([script('pianist-bringup'), '--source', clip, '--loop',
                          '--no-telemetry', '--status-period', '1.0'], str(log))
    node = Node('bringup_listener', context=ros_context)
    counts, frames = [], []
    node.create_subscription(Int32, topics.HANDS_COUNT, lambda m: counts.append(m.data),
                             topics.RESULT_QOS)
    node.create_subscription(Image, topics.IMAGE_RAW, lambda m: frames.append(
        (m.encoding, m.width, m.height)), topics.SENSOR_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        assert spin_until(executor, lambda: any(c > 0 for c in counts) and len(frames) > 5,
                          timeout=90.0), (
            f'no hands seen: counts={counts[-20:]} frames={len(frames)}\n{log.read_text()}')
        assert proc.poll() is None
        assert frames[0] == ('bgr8', 640, 480)
        assert max(counts) <= 4
        # The status line reports camera fps, detector fps and hands.
        deadline = time.monotonic() + 15
        while 'detector' not in log.read_text() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.2)
        assert 'camera' in log.read_text() and 'fps' in log.read_text()
    finally:
        executor.shutdown()
        node.destroy_node()
        if sig == signal.SIGHUP:
            # To the main process only: a whole-group SIGHUP also reaches
            # multiprocessing's resource tracker, which ignores only INT and TERM.
            proc.send_signal(sig)
            try:
                proc.wait(20.0)
            except subprocess.TimeoutExpired:
                pass
        code = stop_process(proc, sig, timeout=20.0)
    output = log.read_text()
    assert code == 0, f'exit status {code}\n{output}'
    assert 'Traceback' not in output, output


def test_invalid_config_value_starts_the_rest_and_says_why(tmp_path):
    config = tmp_path / 'bad.yaml'
    # fps: 30 is an integer where a double is declared; 20 hands is out of range.
    config.write_text('camera:\n  ros__parameters:\n    fps: 30\n'
                      'hand_detector:\n  ros__parameters:\n    max_num_hands: 20\n')
    log = tmp_path / 'bringup.log'
    proc = start_process([script('pianist-bringup'), '--config', str(config), '--no-telemetry',
                          '--duration', '4', '--status-period', '1'], str(log))
    try:
        code = proc.wait(60)
    finally:
        stop_process(proc)
    output = log.read_text()
    assert code == 0, output
    assert 'camera not started: invalid parameter in' in output and "'fps'" in output
    assert 'hand_detector not started' in output and 'max_num_hands' in output
    assert '[stack_monitor]' in output, 'the rest of the stack did not run'
    assert 'Traceback' not in output, output


def test_unparsable_config_file_exits_2_with_the_reason(tmp_path):
    config = tmp_path / 'broken.yaml'
    config.write_text('camera: [\n')
    log = tmp_path / 'bringup.log'
    proc = start_process([script('pianist-bringup'), '--config', str(config)], str(log))
    try:
        code = proc.wait(60)
    finally:
        stop_process(proc)
    output = log.read_text()
    assert code == 2, output
    assert f'cannot start ROS with {config}' in output
    assert 'Traceback' not in output
