"""pianist-bringup as a real process: the clip through camera -> DDS -> detector.

The test process listens on the same (run-unique, loopback-only) DDS domain.
"""

import os
import signal
import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Int32

from pianist_ros.bringup import parse_args
from pianist_ros.common import topics
from support import script
from support import spin_until
from support import start_process
from support import stop_process


def test_parse_args_defaults_and_switches():
    args, ros_args = parse_args(['--source', 'x.mp4', '--no-telemetry', '--recorder',
                                 '--ros-args', '-r', '__ns:=/a'])
    assert args.source == 'x.mp4'
    assert args.with_telemetry_bridge is False
    assert args.with_image_recorder is True
    assert args.with_hand_detector is True
    assert args.with_ota_manager is False
    assert ros_args == ['--ros-args', '-r', '__ns:=/a']


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
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
        code = stop_process(proc, sig, timeout=20.0)
    output = log.read_text()
    assert code == 0, f'exit status {code}\n{output}'
    assert 'Traceback' not in output, output
