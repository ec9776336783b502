"""The ROS-free health model, metrics and HTTP parsing, driven by a fake clock (no rclpy)."""

import os
import threading

import pytest

from pianist_ros.telemetry.app import TelemetryApp
from pianist_ros.telemetry.config import default_config
from pianist_ros.telemetry.config import SCHEMA
from pianist_ros.telemetry.health import ComponentReport
from pianist_ros.telemetry.health import HealthModel
from pianist_ros.telemetry.health import MAX_MESSAGE_CHARS
from pianist_ros.telemetry.health import MAX_VALUES
from pianist_ros.telemetry.health import numeric_values
from pianist_ros.telemetry.metrics import TelemetryMetrics
from pianist_ros.telemetry.server import BadRequest
from pianist_ros.telemetry.server import parse_head
from pianist_ros.telemetry.server import parse_request_line
from pianist_ros.telemetry.server import Request
from pianist_ros.telemetry.server import Response
from pianist_ros.telemetry.server import serialize
from telemetry_support import FakeClock

CAMERA = 'camera: camera'
DETECTOR = 'hand_detector: detector'


def healthy_model(clock: FakeClock, **overrides) -> HealthModel:
    """Return a model that is ok at ``clock.now``: camera streaming, frames, both components."""
    config = default_config(**{'stale_after': 2.0, **overrides})
    model = HealthModel(config, clock=clock, device_id='dev-1', version='9.9.9')
    model.set_camera_state('STREAMING')
    model.update_components([ComponentReport(CAMERA, 0, 'streaming'),
                             ComponentReport(DETECTOR, 0, 'ok', values=(('fps', '30.0'),))])
    for _ in range(31):
        model.record_frame(2)
        clock.advance(1 / 30)
    return model


def test_healthy_report_has_exact_fields_and_types():
    clock = FakeClock()
    report = healthy_model(clock).snapshot()
    assert report.ok and report.ready and report.live and report.http_code == 200
    body = report.to_dict()
    assert {'status', 'current_fps', 'hands_detected', 'uptime_seconds',
            'components'} <= set(body)
    assert body['status'] == 'ok'
    assert isinstance(body['current_fps'], float) and body['current_fps'] == pytest.approx(
        30.0, rel=0.05)
    assert isinstance(body['hands_detected'], int) and body['hands_detected'] == 2
    assert isinstance(body['uptime_seconds'], float) and body['uptime_seconds'] > 0.9
    assert body['components'][DETECTOR] == {'level': 'OK', 'message': 'ok',
                                            'age_sec': pytest.approx(31 / 30, abs=1e-3)}
    assert body['camera_state'] == 'STREAMING'
    assert body['reasons'] == [] and body['device_id'] == 'dev-1'
    assert body['version'] == '9.9.9' and body['frames_processed'] == 31


def _camera_inactive(model, clock):
    model.set_camera_state('INACTIVE')


def _frames_stop(model, clock):
    clock.advance(2.1)
    model.update_components([ComponentReport(CAMERA, 0, 'ok'),
                             ComponentReport(DETECTOR, 0, 'ok')])


def _detector_error(model, clock):
    model.update_components([ComponentReport(DETECTOR, 2, 'mediapipe crashed')])


def _detector_reports_stale(model, clock):
    model.update_components([ComponentReport(DETECTOR, 3, 'no input')])


def _detector_unknown_level(model, clock):
    model.update_components([ComponentReport(DETECTOR, 7, 'weird')])


def _detector_silent(model, clock):
    # Frames keep coming (e.g. from a different detector) but its diagnostics went quiet.
    for _ in range(70):
        clock.advance(1 / 30)
        model.record_frame(1)
    model.update_components([ComponentReport(CAMERA, 0, 'ok')])


@pytest.mark.parametrize('fault, reason_part', [
    (_camera_inactive, 'camera is INACTIVE'),
    (_frames_stop, 'no frame processed for'),
    (_detector_error, 'ERROR: mediapipe crashed'),
    (_detector_reports_stale, 'reported STALE'),
    (_detector_unknown_level, 'ERROR: weird'),
    (_detector_silent, f'{DETECTOR}: no diagnostics for'),
])
def test_each_fault_turns_health_to_error_with_a_reason(fault, reason_part):
    clock = FakeClock()
    model = healthy_model(clock)
    assert model.snapshot().ok
    fault(model, clock)
    report = model.snapshot()
    assert report.status == 'error' and report.http_code == 503
    assert any(reason_part in r for r in report.reasons), report.reasons


def test_stale_boundary_is_exactly_stale_after():
    clock = FakeClock()
    model = healthy_model(clock)
    model.record_frame(0)
    model.update_components([ComponentReport(CAMERA, 0, ''), ComponentReport(DETECTOR, 0, '')])
    clock.advance(2.0)
    assert model.snapshot().ok
    clock.advance(0.01)
    report = model.snapshot()
    assert not report.ok and not report.ready
    assert {c.name: c.level for c in report.components} == {CAMERA: 'STALE', DETECTOR: 'STALE'}


def test_warn_is_ok_but_listed():
    clock = FakeClock()
    model = healthy_model(clock)
    model.update_components([ComponentReport(CAMERA, 1, 'fps low')])
    report = model.snapshot()
    assert report.ok
    assert report.warnings == (f'{CAMERA}: WARN: fps low',)


def test_fresh_model_is_error_and_required_components_show_as_never_received():
    clock = FakeClock()
    model = HealthModel(default_config(), clock=clock)
    body = model.snapshot().to_dict()
    assert body['status'] == 'error' and body['current_fps'] == 0.0
    assert body['hands_detected'] == 0 and body['last_frame_age_sec'] is None
    assert body['components'][CAMERA] == {'level': 'STALE', 'message': 'no diagnostics received',
                                          'age_sec': None}
    assert 'no frame processed yet' in body['reasons']
    assert model.snapshot().live  # nothing hung yet: the heartbeat starts at construction


def test_recovery_returns_to_ok():
    clock = FakeClock()
    model = healthy_model(clock)
    model.set_camera_state('RECONNECTING')
    clock.advance(3.0)
    assert not model.snapshot().ok
    model.set_camera_state('STREAMING')
    model.update_components([ComponentReport(CAMERA, 0, ''), ComponentReport(DETECTOR, 0, '')])
    model.record_frame(1)
    assert model.snapshot().ok


def test_fps_decays_after_frames_stop_and_reaches_zero_after_the_window():
    clock = FakeClock()
    model = healthy_model(clock, fps_window_sec=2.0)
    assert model.snapshot().current_fps == pytest.approx(30.0, rel=0.05)
    clock.advance(1.0)
    decayed = model.snapshot().current_fps
    assert 5.0 < decayed < 25.0
    clock.advance(1.5)
    assert model.snapshot().current_fps == 0.0


def test_heartbeat_missing_means_not_live_and_error():
    clock = FakeClock()
    model = healthy_model(clock, liveness_timeout_sec=1.0, stale_after=30.0)
    model.heartbeat()
    clock.advance(1.5)
    model.record_frame(1)
    report = model.snapshot()
    assert not report.live and not report.ok
    assert any('heartbeat' in r for r in report.reasons)
    model.heartbeat()
    assert model.snapshot().live and model.snapshot().ok


def test_camera_state_from_diagnostics_until_the_topic_is_heard():
    clock = FakeClock()
    model = HealthModel(default_config(), clock=clock)
    model.update_components([ComponentReport(CAMERA, 1, 'connecting',
                                             values=(('state', 'CONNECTING'),))])
    assert model.snapshot().camera_state == 'CONNECTING'
    model.set_camera_state('STREAMING')
    model.update_components([ComponentReport(CAMERA, 1, '', values=(('state', 'STALLED'),))])
    assert model.snapshot().camera_state == 'STREAMING'  # the latched topic wins


def test_component_count_and_sizes_are_capped():
    clock = FakeClock()
    model = HealthModel(default_config(max_components=3), clock=clock)
    model.update_components([ComponentReport(f'n{i}: t', 0, '') for i in range(10)])
    report = model.snapshot()
    names = {c.name for c in report.components} - {CAMERA, DETECTOR}
    assert names == {'n0: t', 'n1: t', 'n2: t'} and report.dropped_statuses == 7
    big = ComponentReport.capped('x' * 1000, 0, 'm' * 10 ** 6, values=(
        (f'k{i}', 'v' * 1000) for i in range(1000)))
    assert len(big.message) == MAX_MESSAGE_CHARS and len(big.values) == MAX_VALUES
    assert len(big.name) <= 128 and all(len(v) <= 256 for _, v in big.values)


def test_snapshots_are_never_torn_under_concurrent_writes():
    clock = FakeClock()
    model = healthy_model(clock)
    stop = threading.Event()
    errors = []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            model.update_components([ComponentReport(CAMERA, 0, str(i)),
                                     ComponentReport(DETECTOR, 0, str(i))])
            model.record_frame(i)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(3000):
            report = model.snapshot()
            messages = {c.name: c.message for c in report.components}
            if messages[CAMERA] != messages[DETECTOR]:
                errors.append(messages)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]


def test_numeric_values_keeps_finite_numbers_and_booleans():
    assert numeric_values((('fps', '29.5'), ('state', 'STREAMING'), ('ok', 'True'),
                           ('bad', 'nan'), ('n', '3'))) == [('fps', 29.5), ('ok', 1.0),
                                                            ('n', 3.0)]


def test_metrics_page_agrees_with_health():
    clock = FakeClock()
    model = healthy_model(clock)
    metrics = TelemetryMetrics(model)
    app = TelemetryApp(model, metrics)
    response = app(Request('GET', '/metrics', '', 'HTTP/1.1', ()))
    text = response.body.decode()
    assert response.status == 200 and response.content_type.startswith('text/plain')
    assert 'pianist_health_ok 1.0' in text
    assert 'pianist_frames_processed_total 31.0' in text
    assert f'pianist_diagnostic_value{{component="{DETECTOR}",key="fps"}} 30.0' in text
    assert 'pianist_camera_state{state="STREAMING"} 1.0' in text
    model.set_camera_state('ENDED')
    app(Request('POST', '/health', '', 'HTTP/1.1', ()))
    text = app(Request('GET', '/metrics', '', 'HTTP/1.1', ())).body.decode()
    assert 'pianist_health_ok 0.0' in text
    assert 'pianist_http_requests_total{code="405",path="/health"} 1.0' in text


def test_schema_defaults_build_a_config():
    config = default_config()
    assert config.host == '0.0.0.0' and config.port == 5000
    assert {p.name for p in SCHEMA} >= {'host', 'port', 'stale_after'}
    with pytest.raises(TypeError):
        default_config(no_such_field=1)


@pytest.mark.parametrize('head, method, path, query', [
    (b'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', 'GET', '/health', ''),
    (b'HEAD /metrics?x=1 HTTP/1.0\r\n\r\n', 'HEAD', '/metrics', 'x=1'),
    (b'DELETE / HTTP/1.1\r\nA: b\r\n\r\n', 'DELETE', '/', ''),
])
def test_parse_head_accepts_valid_requests(head, method, path, query):
    request = parse_head(head)
    assert (request.method, request.path, request.query) == (method, path, query)


@pytest.mark.parametrize('head, status', [
    (b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 400),  # a TLS hello
    (b'GET /health\r\n\r\n', 400),
    (b'GET health HTTP/1.1\r\n\r\n', 400),
    (b'GET /a b HTTP/1.1\r\n\r\n', 400),
    (b'GET / HTTP/2.0\r\n\r\n', 400),
    (b'G@T / HTTP/1.1\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\nno colon here\r\n\r\n', 400),
    (b'GET / HTTP/1.1\r\n' + b''.join(b'h%d: v\r\n' % i for i in range(100)) + b'\r\n', 431),
])
def test_parse_head_rejects_malformed_requests(head, status):
    with pytest.raises(BadRequest) as info:
        parse_head(head)
    assert info.value.status == status


def test_serialize_head_keeps_length_and_drops_body():
    response = Response(200, b'{"a":1}')
    full = serialize(response, keep_alive=True)
    head = serialize(response, keep_alive=False, head_only=True)
    assert full.endswith(b'\r\n\r\n{"a":1}') and b'Connection: keep-alive' in full
    assert head.endswith(b'\r\n\r\n') and b'Content-Length: 7' in head
    assert b'Connection: close' in head


def test_health_reports_the_running_commit_for_the_ota_gate():
    import subprocess
    from pianist_ros.common.device import software_revision
    model = HealthModel(default_config(), clock=FakeClock(), git_hash='a' * 40)
    assert model.snapshot().to_dict()['git_hash'] == 'a' * 40
    # From a git checkout (this repo) the revision is HEAD.
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if head.returncode == 0:
        assert software_revision() == head.stdout.strip()


def _pipeline_tick(model: HealthModel, clock: FakeClock, seconds: float) -> None:
    """Advance time while the camera, detector and executor keep working."""
    clock.advance(seconds)
    model.heartbeat()
    model.record_frame(1)
    model.update_components([ComponentReport(CAMERA, 0, ''), ComponentReport(DETECTOR, 0, '')])


def test_a_one_off_status_from_another_node_warns_when_silent_then_is_forgotten():
    clock = FakeClock()
    model = healthy_model(clock, forget_after_sec=30.0)
    model.update_components([ComponentReport('ops_tool: selftest', 0, 'passed')])
    assert model.snapshot().ok
    for _ in range(10):  # the pipeline keeps running; ops_tool never reports again
        _pipeline_tick(model, clock, 1.0)
    report = model.snapshot()
    assert report.ok, report.reasons
    assert any('ops_tool: selftest: no diagnostics for' in w for w in report.warnings)
    assert {c.name: c.level for c in report.components}['ops_tool: selftest'] == 'STALE'
    for _ in range(25):
        _pipeline_tick(model, clock, 1.0)
    report = model.snapshot()
    assert report.ok and report.warnings == ()
    assert {c.name for c in report.components} == {CAMERA, DETECTOR}


def test_only_a_fresh_error_of_a_component_that_is_not_required_makes_health_error():
    clock = FakeClock()
    model = healthy_model(clock)
    model.update_components([ComponentReport('ops_tool: selftest', 2, 'disk broken')])
    assert not model.snapshot().ok
    assert 'ops_tool: selftest: ERROR: disk broken' in model.snapshot().reasons
    model.update_components([ComponentReport('ops_tool: selftest', 3, 'no input')])
    assert model.snapshot().ok  # reported STALE by a component nobody requires: a warning
    assert any('reported STALE' in w for w in model.snapshot().warnings)


def test_a_status_flood_never_fails_health_crowds_out_required_ones_or_bloats_metrics():
    clock = FakeClock()
    model = healthy_model(clock, stale_after=5.0, forget_after_sec=60.0)
    metrics = TelemetryMetrics(model)
    app = TelemetryApp(model, metrics)
    values = [(f'key{i:03d}' + 'k' * 100, str(i)) for i in range(MAX_VALUES)]
    model.update_components([
        ComponentReport.capped(f'flood{i:04d}' + 'n' * 200 + ': t', 0, 'm' * 600, values=values)
        for i in range(1000)])
    assert model.snapshot().dropped_statuses == 1000 - 64
    body = app(Request('GET', '/metrics', '', 'HTTP/1.1', ())).body
    assert len(body) < 256 * 1024, len(body)
    assert b'pianist_diagnostic_values_dropped' in body
    # Required components still get in and keep their values in /metrics.
    model.update_components([ComponentReport(CAMERA, 0, 'ok', values=(('fps', '15.0'),)),
                             ComponentReport(DETECTOR, 0, 'ok')])
    body = app(Request('GET', '/metrics', '', 'HTTP/1.1', ())).body.decode()
    assert f'pianist_diagnostic_value{{component="{CAMERA}",key="fps"}} 15.0' in body
    _pipeline_tick(model, clock, 10.0)
    report = model.snapshot()
    assert report.ok, report.reasons[:3]
    assert len(report.warnings) == 64
    _pipeline_tick(model, clock, 55.0)
    model.update_components([ComponentReport('late: task', 0, '')])
    report = model.snapshot()
    assert report.ok and report.warnings == ()
    assert {c.name for c in report.components} == {CAMERA, DETECTOR, 'late: task'}
    assert model.snapshot().dropped_statuses == 1000 - 64  # the flood freed its slots


@pytest.mark.parametrize('level, message', [(2, 'disk full'), (1, 'read-only disk'),
                                            (3, 'stalled')])
def test_advisory_components_only_warn(level, message):
    clock = FakeClock()
    model = healthy_model(clock)
    recorder, ota = 'image_recorder: recorder', 'ota_manager: ota'
    assert default_config().advisory_components == (recorder, ota)
    model.update_components([ComponentReport(recorder, level, message),
                             ComponentReport(ota, level, message)])
    report = model.snapshot()
    assert report.ok and report.http_code == 200, report.reasons
    assert any(w.startswith(f'{recorder}: ') and message in w for w in report.warnings)
    assert any(w.startswith(f'{ota}: ') for w in report.warnings)
    _pipeline_tick(model, clock, 3.0)  # silent past stale_after: only a warning
    report = model.snapshot()
    assert report.ok and any(f'{recorder}: no diagnostics for' in w for w in report.warnings)


def test_advisory_wins_over_required():
    clock = FakeClock()
    model = healthy_model(clock, required_components=[CAMERA, DETECTOR, 'ota_manager: ota'])
    assert model.snapshot().ok  # never heard, but advisory: a warning only
    assert 'ota_manager: ota: no diagnostics received' in model.snapshot().warnings


def test_without_require_frames_camera_alone_is_ok_and_ready():
    clock = FakeClock()
    model = HealthModel(default_config(), clock=clock)
    model.set_camera_state('STREAMING')
    model.update_components([ComponentReport(CAMERA, 0, 'streaming')])
    report = model.snapshot()
    assert not report.ok and 'no frame processed yet' in report.reasons
    model = HealthModel(default_config(required_components=[CAMERA], require_frames=False),
                        clock=clock)
    model.set_camera_state('STREAMING')
    model.update_components([ComponentReport(CAMERA, 0, 'streaming')])
    clock.advance(1.0)
    report = model.snapshot()
    assert report.ok and report.ready, report.reasons
    model.set_camera_state('RECONNECTING')
    assert not model.snapshot().ok and not model.snapshot().ready


@pytest.mark.parametrize('head', [
    b'GET /health HTTP/1.0', b'GET /health', b'\x16\x03\x01\x02\x00', b'GET  / HTTP/1.1'])
def test_parse_request_line(head):
    if head == b'GET /health HTTP/1.0':
        assert parse_request_line(head) == ('GET', '/health', 'HTTP/1.0')
    else:
        with pytest.raises(BadRequest):
            parse_request_line(head)
