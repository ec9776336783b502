"""TelemetryBridgeNode with real rclpy nodes over real DDS and real HTTP on 127.0.0.1.

The camera and detector are stand-ins (test/telemetry_support.py) that publish the
real messages of docs/contract.md; test_telemetry_e2e.py runs the real stack.
"""

import socket
import time

import pytest
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import MultiThreadedExecutor
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from pianist_ros.common import diagnostics
from pianist_ros.telemetry.node import RETRY_SEC
from pianist_ros.telemetry.node import TelemetryBridgeNode
from support import wait_until
from telemetry_support import CameraStandIn
from telemetry_support import DetectorStandIn
from telemetry_support import http_get
from telemetry_support import SpinThread

STALE_AFTER = 2.0
#: /health must keep answering fast even while the pipeline is hung.
FAST = 1.0


def _bridge(ros_context, port: int = 0, **params) -> TelemetryBridgeNode:
    overrides = [Parameter('host', value='127.0.0.1'), Parameter('port', value=port),
                 Parameter('stale_after', value=STALE_AFTER)]
    overrides += [Parameter(k.replace('__', '.'), value=v) for k, v in params.items()]
    return TelemetryBridgeNode(context=ros_context, parameter_overrides=overrides)


class Stack:
    """Bridge on its own executor thread; camera and detector stand-ins on another."""

    def __init__(self, ros_context, **params):
        self.bridge = _bridge(ros_context, **params)
        self.camera = CameraStandIn(context=ros_context)
        self.detector = DetectorStandIn(context=ros_context)
        self.pipeline_executor = MultiThreadedExecutor(num_threads=3, context=ros_context)
        self.pipeline_executor.add_node(self.camera)
        self.pipeline_executor.add_node(self.detector)
        self.bridge_executor = SingleThreadedExecutor(context=ros_context)
        self.bridge_executor.add_node(self.bridge)
        self.pipeline_spin = SpinThread(self.pipeline_executor)
        self.bridge_spin = SpinThread(self.bridge_executor)
        self.port = self.bridge.http_port

    def health(self):
        return http_get(self.port, '/health', timeout=5.0)

    def wait_status(self, code: int, timeout: float):
        """Poll /health until it answers ``code``; every answer must come back fast."""
        seen = []

        def check():
            res = self.health()
            assert res.elapsed < FAST, f'/health took {res.elapsed:.2f} s'
            seen.append(res)
            return res.status == code

        ok = wait_until(check, timeout=timeout, step=0.1)
        return ok, seen[-1] if seen else None

    def close(self):
        self.detector.release()
        self.pipeline_spin.stop()
        self.bridge_spin.stop()
        self.pipeline_executor.shutdown()
        self.bridge_executor.shutdown()
        for node in (self.bridge, self.camera, self.detector):
            node.destroy_node()


@pytest.fixture
def stack(ros_context):
    s = Stack(ros_context, liveness_timeout_sec=1.5)
    try:
        ok, last = s.wait_status(200, timeout=20.0)
        assert ok, last and last.json()
        yield s
    finally:
        s.close()


def test_endpoints_against_live_nodes(stack):
    res = stack.health()
    body = res.json()
    assert res.status == 200 and body['status'] == 'ok'
    assert isinstance(body['current_fps'], float) and body['current_fps'] > 3.0
    assert isinstance(body['hands_detected'], int) and 0 <= body['hands_detected'] <= 2
    assert isinstance(body['uptime_seconds'], float)
    assert body['components']['camera: camera']['level'] == 'OK'
    assert body['components']['hand_detector: detector']['level'] == 'OK'
    assert isinstance(body['components']['camera: camera']['age_sec'], float)
    assert 'telemetry_bridge: http' not in body['components']  # its own status is not fed back
    assert body['camera_state'] == 'STREAMING' and body['reasons'] == []
    assert http_get(stack.port, '/livez').status == 200
    assert http_get(stack.port, '/readyz').status == 200
    metrics = http_get(stack.port, '/metrics')
    assert metrics.status == 200
    assert b'pianist_health_ok 1.0' in metrics.body
    assert b'pianist_diagnostic_value{component="hand_detector: detector",key="fps"} 20.0' \
        in metrics.body
    assert http_get(stack.port, '/x').status == 404
    assert http_get(stack.port, '/metrics', method='POST').status == 405


def test_camera_deactivated_gives_503_then_recovers(stack):
    start = time.monotonic()
    stack.camera.set_state('INACTIVE')
    ok, last = stack.wait_status(503, timeout=STALE_AFTER + 1.0)
    assert ok, last.json()
    assert time.monotonic() - start <= STALE_AFTER + 1.0
    assert 'camera is INACTIVE, not STREAMING' in last.json()['reasons']
    assert http_get(stack.port, '/readyz').status == 503
    stack.camera.set_state('STREAMING')
    ok, last = stack.wait_status(200, timeout=10.0)
    assert ok, last.json()


def test_frames_stop_gives_503_within_stale_after_then_recovers(stack):
    stack.detector.frames_enabled = False  # e.g. the camera's stream died unnoticed
    start = time.monotonic()
    ok, last = stack.wait_status(503, timeout=STALE_AFTER + 1.0)
    assert ok and time.monotonic() - start <= STALE_AFTER + 1.0, last.json()
    assert any('no frame processed for' in r for r in last.json()['reasons'])
    stack.detector.frames_enabled = True
    ok, last = stack.wait_status(200, timeout=10.0)
    assert ok, last.json()


def test_hung_detector_is_error_while_health_answers_fast(stack):
    stack.detector.hang()
    start = time.monotonic()
    ok, last = stack.wait_status(503, timeout=STALE_AFTER + 1.0)
    assert ok and time.monotonic() - start <= STALE_AFTER + 1.0, last.json()
    body = last.json()
    # Its diagnostics thread is alive and says OK; only the frame flow exposes the hang.
    assert body['components']['hand_detector: detector']['level'] == 'OK'
    assert any('no frame processed for' in r for r in body['reasons'])
    assert body['current_fps'] < 20.0
    for _ in range(10):
        res = stack.health()
        assert res.status == 503 and res.elapsed < FAST
    stack.detector.release()
    ok, last = stack.wait_status(200, timeout=10.0)
    assert ok, last.json()


def test_detector_error_and_silence_are_reported(stack):
    stack.detector.level = diagnostics.ERROR
    stack.detector.message = 'mediapipe failed 5 times'
    ok, last = stack.wait_status(503, timeout=5.0)
    assert ok
    assert ('hand_detector: detector: ERROR: mediapipe failed 5 times'
            in last.json()['reasons'])
    stack.detector.level = diagnostics.OK
    assert stack.wait_status(200, timeout=5.0)[0]
    stack.detector.stop_diagnostics()
    ok, last = stack.wait_status(503, timeout=STALE_AFTER + 1.5)
    assert ok
    assert last.json()['components']['hand_detector: detector']['level'] == 'STALE'


def test_hung_bridge_executor_fails_livez_but_http_still_answers(stack):
    stack.bridge_spin.pause()
    try:
        def livez_503():
            res = http_get(stack.port, '/livez', timeout=5.0)
            assert res.elapsed < FAST
            return res.status == 503

        assert wait_until(livez_503, timeout=5.0, step=0.1)
        assert http_get(stack.port, '/livez').json()['status'] == 'hung'
    finally:
        stack.bridge_spin.resume()
    assert wait_until(lambda: http_get(stack.port, '/livez').status == 200, timeout=5.0)


def test_port_in_use_is_retried_until_free(ros_context):
    blocker = socket.socket()
    blocker.bind(('127.0.0.1', 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    bridge = _bridge(ros_context, port=port)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    spin = SpinThread(executor)
    try:
        assert bridge.http_port is None
        blocker.close()
        assert wait_until(lambda: bridge.http_port == port, timeout=RETRY_SEC + 5.0)
        assert http_get(port, '/livez').status == 200
    finally:
        blocker.close()
        spin.stop()
        executor.shutdown()
        bridge.destroy_node()
    with pytest.raises(OSError):
        socket.create_connection(('127.0.0.1', port), timeout=1)  # destroy_node freed it


def test_invalid_parameters_are_refused(ros_context):
    for name, value in (('port', 70000), ('stale_after', 0.0), ('http.max_connections', 0)):
        with pytest.raises(InvalidParameterValueException):
            TelemetryBridgeNode(context=ros_context,
                                parameter_overrides=[Parameter(name, value=value)])


def test_restart_only_parameters_are_refused_at_run_time(ros_context):
    bridge = _bridge(ros_context)
    try:
        for param in (Parameter('stale_after', value=9.0), Parameter('port', value=5001),
                      Parameter('http.timeout_sec', value=1.0),
                      Parameter('require_frames', value=False),
                      Parameter('advisory_components', value=['x: y'])):
            result, = bridge.set_parameters([param])
            assert not result.successful and 'read-only' in result.reason, result.reason
            assert bridge.get_parameter(param.name).value != param.value
        assert bridge.model.config.stale_after == STALE_AFTER
    finally:
        bridge.destroy_node()


def test_camera_without_detector_is_ok_with_the_bringup_overrides(ros_context):
    """pianist-bringup --no-detector passes these two overrides to the bridge."""
    bridge = _bridge(ros_context, required_components=['camera: camera'],
                     require_frames=False)
    camera = CameraStandIn(context=ros_context)
    executor = MultiThreadedExecutor(num_threads=2, context=ros_context)
    executor.add_node(bridge)
    executor.add_node(camera)
    spin = SpinThread(executor)
    try:
        def healthy():
            res = http_get(bridge.http_port, '/health')
            return res.status == 200 and res.json()['camera_state'] == 'STREAMING'

        assert wait_until(healthy, timeout=15.0, step=0.1), \
            http_get(bridge.http_port, '/health').json()
        body = http_get(bridge.http_port, '/health').json()
        assert body['reasons'] == [] and body['frames_processed'] == 0
        assert body['components']['camera: camera']['level'] == 'OK'
        assert 'hand_detector: detector' not in body['components']
        assert http_get(bridge.http_port, '/readyz').status == 200
        camera.set_state('RECONNECTING')  # still catches a camera fault
        assert wait_until(lambda: http_get(bridge.http_port, '/health').status == 503,
                          timeout=10.0, step=0.1)
    finally:
        spin.stop()
        executor.shutdown()
        camera.destroy_node()
        bridge.destroy_node()
