"""The telemetry bridge against the real stack: real camera, real MediaPipe detector.

1. In-process: CameraNode reading the MJPEG test camera (a separate process),
   HandDetectorNode and TelemetryBridgeNode over real DDS; kill the camera's stream
   server and deactivate the camera, and watch /health go 503 and come back.
2. As a process: ``pianist-bringup`` on the shared clip; every endpoint's fields,
   types and codes, then a clean SIGTERM stop.
"""

import os
import signal
import time

from lifecycle_msgs.msg import Transition
import pytest
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
import yaml

from camera_support import CameraHarness
from camera_support import MjpegServer
from pianist_ros.detection.node import HandDetectorNode
from pianist_ros.telemetry.node import TelemetryBridgeNode
from support import free_port
from support import REPO
from support import script
from support import start_process
from support import stop_process
from support import wait_until
from telemetry_support import http_get
from telemetry_support import SpinThread

STALE_AFTER = 2.0
FAST = 1.0


def _wait_health(port: int, code: int, timeout: float):
    seen = []

    def check():
        try:
            res = http_get(port, '/health', timeout=5.0)
        except OSError:
            return False
        assert res.elapsed < FAST, f'/health took {res.elapsed:.2f} s'
        seen.append(res)
        return res.status == code

    return wait_until(check, timeout=timeout, step=0.1), (seen[-1] if seen else None)


@pytest.fixture
def mjpeg(data_dir, tmp_path):
    server = MjpegServer(free_port(), str(tmp_path), fps=15.0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_real_camera_stream_killed_and_deactivated(ros_context, mjpeg):
    harness = CameraHarness(ros_context, {
        'source': mjpeg.url, 'stall_timeout': 1.0, 'open_timeout': 3.0,
        'reconnect.initial_delay': 0.2, 'reconnect.max_delay': 1.0}, namespace='/e2e')
    detector = HandDetectorNode(context=ros_context, namespace='/e2e', parameter_overrides=[
        Parameter('model_complexity', value=0)])
    bridge = TelemetryBridgeNode(context=ros_context, namespace='/e2e', parameter_overrides=[
        Parameter('host', value='127.0.0.1'), Parameter('port', value=0),
        Parameter('stale_after', value=STALE_AFTER)])
    executor = MultiThreadedExecutor(num_threads=3, context=ros_context)
    executor.add_node(detector)
    executor.add_node(bridge)
    spin = SpinThread(executor)
    port = bridge.http_port
    try:
        assert harness.transition(Transition.TRANSITION_CONFIGURE)
        assert harness.transition(Transition.TRANSITION_ACTIVATE)
        ok, last = _wait_health(port, 200, timeout=90.0)
        assert ok, last and last.json()
        body = last.json()
        assert body['current_fps'] > 0.5 and isinstance(body['hands_detected'], int)
        assert body['components']['camera: camera']['level'] in ('OK', 'WARN')
        assert body['camera_state'] == 'STREAMING'

        # The camera's source dies: RECONNECTING and no frames -> error in time.
        mjpeg.kill()
        killed = time.monotonic()
        ok, last = _wait_health(port, 503, timeout=STALE_AFTER + 1.0)
        assert ok and time.monotonic() - killed <= STALE_AFTER + 1.0, last.json()
        mjpeg.start()
        ok, last = _wait_health(port, 200, timeout=60.0)
        assert ok, last.json()

        # An operator deactivates the camera.
        assert harness.transition(Transition.TRANSITION_DEACTIVATE)
        deactivated = time.monotonic()
        ok, last = _wait_health(port, 503, timeout=STALE_AFTER + 1.0)
        assert ok and time.monotonic() - deactivated <= STALE_AFTER + 1.0, last.json()
        assert last.json()['camera_state'] != 'STREAMING'
        assert harness.transition(Transition.TRANSITION_ACTIVATE)
        ok, last = _wait_health(port, 200, timeout=60.0)
        assert ok, last.json()
    finally:
        spin.stop()
        executor.shutdown()
        harness.close()
        bridge.destroy_node()
        detector.destroy_node()


def test_bringup_serves_every_endpoint_on_the_clip(data_dir, tmp_path):
    with open(os.path.join(REPO, 'config', 'pianist.yaml'), encoding='utf-8') as handle:
        config = yaml.safe_load(handle)
    port = free_port()
    config['telemetry_bridge']['ros__parameters'].update(
        {'host': '127.0.0.1', 'port': port, 'stale_after': 3.0})
    config['hand_detector']['ros__parameters']['model_complexity'] = 0
    config_path = tmp_path / 'pianist.yaml'
    config_path.write_text(yaml.safe_dump(config), encoding='utf-8')
    log = tmp_path / 'bringup.log'
    proc = start_process([script('pianist-bringup'), '--config', str(config_path),
                          '--source', os.path.join(data_dir, 'hands_clip.mp4'), '--loop',
                          '--status-period', '0'], str(log),
                         env={'PYTHONPATH': REPO})
    try:
        ok, last = _wait_health(port, 200, timeout=90.0)
        assert ok, (last and last.json(), log.read_text()[-3000:])
        body = last.json()
        assert body['status'] == 'ok' and body['reasons'] == []
        assert isinstance(body['current_fps'], float) and body['current_fps'] > 0.5
        assert isinstance(body['hands_detected'], int) and 0 <= body['hands_detected'] <= 2
        assert isinstance(body['uptime_seconds'], float) and body['uptime_seconds'] > 0
        for name in ('camera: camera', 'hand_detector: detector'):
            comp = body['components'][name]
            assert comp['level'] in ('OK', 'WARN') and isinstance(comp['message'], str)
            assert isinstance(comp['age_sec'], float) and comp['age_sec'] <= 3.0
        live = http_get(port, '/livez')
        assert live.status == 200 and live.json()['status'] == 'alive'
        ready = http_get(port, '/readyz')
        assert ready.status == 200 and ready.json()['camera_state'] == 'STREAMING'
        metrics = http_get(port, '/metrics')
        assert metrics.status == 200 and b'pianist_health_ok 1.0' in metrics.body
        assert b'pianist_diagnostic_value{component="hand_detector: detector"' in metrics.body
        assert http_get(port, '/nope').status == 404
        assert http_get(port, '/health', method='POST').status == 405
        assert f'health at http://127.0.0.1:{port}/health' in log.read_text()
    finally:
        code = stop_process(proc, signal.SIGTERM, timeout=20.0)
    output = log.read_text()
    assert code == 0, output[-3000:]
    # Other nodes' shutdown noise is their tests' business (test_bringup.py); ours is this.
    assert 'pianist_ros/telemetry' not in output, output[-3000:]
