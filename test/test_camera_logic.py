"""ROS-free tests of the camera: source parsing, real sources, backoff, state machine, worker."""

import os
import random
import shutil
import threading
import time

import numpy as np
import pytest

from camera_support import FakeClock
from camera_support import HangingSource
from camera_support import ScriptedSource
from pianist_ros.camera.capture import CaptureConfig
from pianist_ros.camera.capture import CaptureWorker
from pianist_ros.camera.capture import check_frame
from pianist_ros.camera.config import CameraConfig
from pianist_ros.camera.errors import SourceConfigError
from pianist_ros.camera.errors import SourceEnded
from pianist_ros.camera.errors import SourceOpenError
from pianist_ros.camera.errors import SourceReadError
from pianist_ros.camera.reconnect import Backoff
from pianist_ros.camera.reconnect import BackoffPolicy
from pianist_ros.camera.reconnect import CameraState
from pianist_ros.camera.reconnect import ReconnectMachine
from pianist_ros.camera.sources import check_source_config
from pianist_ros.camera.sources import make_source
from pianist_ros.camera.sources import Pacer
from pianist_ros.camera.sources import parse_source
from pianist_ros.camera.sources import redact_url
from pianist_ros.camera.sources import SourceOptions
from support import free_port
from support import wait_until

# ---- parsing ------------------------------------------------------------------------


@pytest.mark.parametrize('text, kind, target', [
    ('', 'synthetic', ''),
    ('synthetic', 'synthetic', ''),
    ('0', 'v4l2', '/dev/video0'),
    ('12', 'v4l2', '/dev/video12'),
    ('/dev/video3', 'v4l2', '/dev/video3'),
    ('rtsp://cam.local:554/stream', 'network', 'rtsp://cam.local:554/stream'),
    ('http://127.0.0.1:8080/video.mjpg', 'network', 'http://127.0.0.1:8080/video.mjpg'),
    ('file:///data/clip.mp4', 'file', '/data/clip.mp4'),
    ('/data/clip.mp4', 'file', '/data/clip.mp4'),
    ('clip.mp4', 'file', 'clip.mp4'),
    ('videotestsrc ! videoconvert ! appsink', 'gstreamer',
     'videotestsrc ! videoconvert ! appsink'),
])
def test_parse_source_classifies(text, kind, target):
    spec = parse_source(text)
    assert (spec.kind, spec.target) == (kind, target)


@pytest.mark.parametrize('text, message', [
    ('ftp://host/x', 'unsupported URL scheme'),
    ('rtsp:///nohost', 'no host'),
    ('clip\x00.mp4', 'control characters'),
    ('x' * 5000, 'longer than'),
])
def test_parse_source_refuses_malformed(text, message):
    with pytest.raises(SourceConfigError, match=message):
        parse_source(text)


def test_redact_url_masks_passwords():
    assert redact_url('rtsp://admin:secret@10.0.0.2:554/s') == 'rtsp://admin:***@10.0.0.2:554/s'
    assert 'secret' not in parse_source('rtsp://admin:secret@cam/s').describe()
    assert redact_url('http://host/x') == 'http://host/x'


# ---- real sources -------------------------------------------------------------------


def test_synthetic_source_is_paced_and_sized():
    source = make_source('synthetic', SourceOptions(fps=50.0, width=320, height=240))
    source.open()
    try:
        start = time.monotonic()
        frames = [source.read() for _ in range(26)]
        elapsed = time.monotonic() - start
    finally:
        source.close()
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])
    # 25 periods of 20 ms; generous upper bound for a loaded machine.
    assert 0.45 <= elapsed < 3.0


def test_file_source_reads_real_clip_at_its_own_rate(data_dir):
    source = make_source(os.path.join(data_dir, 'hands_clip.mp4'), SourceOptions(fps=30.0))
    source.open()
    try:
        assert source.fps == pytest.approx(15.0)
        frame = source.read()
        assert frame.shape == (480, 640, 3)
    finally:
        source.close()
    fixed = make_source(os.path.join(data_dir, 'hands_clip.mp4'),
                        SourceOptions(fps=30.0, use_file_fps=False))
    fixed.open()
    try:
        assert fixed.fps == 30.0
    finally:
        fixed.close()


def test_file_source_ends_or_loops(data_dir, tmp_path):
    short = str(tmp_path / 'short.mp4')
    _write_clip(os.path.join(data_dir, 'hands_clip.mp4'), short, frames=6)
    ended = make_source(short, SourceOptions(fps=200.0, use_file_fps=False))
    ended.open()
    try:
        count = 0
        with pytest.raises(SourceEnded, match='end of video file'):
            for _ in range(20):
                ended.read()
                count += 1
        assert count == 6
    finally:
        ended.close()
    looping = make_source(short, SourceOptions(fps=200.0, use_file_fps=False, loop=True))
    looping.open()
    try:
        frames = [looping.read() for _ in range(15)]
        assert all(f is not None and f.shape == (480, 640, 3) for f in frames)
    finally:
        looping.close()


def test_missing_file_device_and_bad_url_give_clear_errors(tmp_path):
    options = SourceOptions(open_timeout=2.0)
    with pytest.raises(SourceOpenError, match='video file not found: .*nope.mp4'):
        make_source(str(tmp_path / 'nope.mp4'), options).open()
    with pytest.raises(SourceOpenError, match='/dev/video63 does not exist'):
        make_source('/dev/video63', options).open()
    with pytest.raises(SourceOpenError, match='/dev/video9 does not exist'):
        make_source('9', options).open()
    port = free_port()  # nothing listens there
    with pytest.raises(SourceOpenError, match='cannot open network stream http://127.0.0.1'):
        make_source(f'http://127.0.0.1:{port}/x.mjpg', options).open()
    not_video = tmp_path / 'notes.mp4'
    not_video.write_bytes(b'this is not a video' * 100)
    with pytest.raises(SourceOpenError, match='cannot decode video file'):
        make_source(str(not_video), options).open()


def test_file_source_notices_truncation_and_deletion(data_dir, tmp_path):
    clip = str(tmp_path / 'clip.mp4')
    shutil.copyfile(os.path.join(data_dir, 'hands_clip.mp4'), clip)
    options = SourceOptions(fps=200.0, use_file_fps=False, loop=True)
    source = make_source(clip, options)
    source.open()
    try:
        assert source.read() is not None
        with open(clip, 'r+b') as handle:
            handle.truncate(os.path.getsize(clip) // 3)
        with pytest.raises(SourceReadError, match='truncated'):
            for _ in range(2000):
                source.read()
    finally:
        source.close()
    shutil.copyfile(os.path.join(data_dir, 'hands_clip.mp4'), clip)
    source = make_source(clip, options)
    source.open()
    try:
        assert source.read() is not None
        os.unlink(clip)
        with pytest.raises(SourceReadError, match='deleted'):
            for _ in range(2000):
                source.read()
    finally:
        source.close()


def test_gstreamer_pipeline_source_via_appsink():
    # GStreamer is initialised here, inside the test, never at collection: Gst.init()
    # before rclpy's first import kills a later rclpy node (docs/recorder.md).
    spec = 'videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=30/1'
    check_source_config(parse_source(spec))
    source = make_source(spec, SourceOptions(read_timeout=5.0))
    source.open()
    try:
        frames = [source.read() for _ in range(3)]
    finally:
        source.close()
    assert all(f is not None and f.shape == (120, 160, 3) for f in frames)
    with pytest.raises(SourceConfigError, match='invalid GStreamer pipeline'):
        check_source_config(parse_source('nosuchelement ! appsink'))


def _write_clip(src: str, dst: str, frames: int) -> None:
    import cv2
    cap = cv2.VideoCapture(src)
    out = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*'mp4v'), 15.0, (640, 480))
    try:
        for _ in range(frames):
            ok, frame = cap.read()
            assert ok
            out.write(frame)
    finally:
        cap.release()
        out.release()


# ---- pacing and backoff -------------------------------------------------------------


def test_pacer_never_bursts_after_a_late_frame():
    clock = FakeClock()
    pacer = Pacer(10.0, clock)
    assert pacer.delay() == 0.0
    assert pacer.delay() == pytest.approx(0.1)
    clock.advance(1.0)  # far behind: resync instead of ten zero delays
    assert pacer.delay() == 0.0
    assert pacer.delay() == pytest.approx(0.1)


def test_backoff_schedule_without_jitter_is_exponential_and_capped():
    backoff = Backoff(BackoffPolicy(initial_delay=0.5, max_delay=5.0, multiplier=2.0,
                                    jitter='none'))
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    assert Backoff(BackoffPolicy(jitter='none')).ceiling(10 ** 9) == 10.0


@pytest.mark.parametrize('jitter', ['full', 'equal', 'decorrelated'])
def test_backoff_with_jitter_is_deterministic_and_bounded(jitter):
    policy = BackoffPolicy(initial_delay=0.2, max_delay=3.0, multiplier=2.0, jitter=jitter)
    first = [Backoff(policy, random.Random(42)).next_delay() for _ in range(3)]
    run_a = Backoff(policy, random.Random(7))
    run_b = Backoff(policy, random.Random(7))
    a = [run_a.next_delay() for _ in range(30)]
    assert a == [run_b.next_delay() for _ in range(30)]
    assert len(set(a)) > 20, 'jitter must spread the delays'
    assert all(0.0 <= d <= 3.0 for d in a)
    assert first[0] == first[1] == first[2]
    ceilings = [min(3.0, 0.2 * 2 ** i) for i in range(30)]
    if jitter == 'full':
        assert all(d <= c for d, c in zip(a, ceilings))
        # Expected value for the full-jitter draw with seed 7 (uniform(0, ceiling)).
        assert a[0] == pytest.approx(random.Random(7).uniform(0.0, 0.2))
    elif jitter == 'equal':
        assert all(c / 2 <= d <= c for d, c in zip(a, ceilings))
    else:
        assert all(d >= 0.2 for d in a)
        assert max(a[10:]) > 1.5, 'decorrelated jitter grows towards max_delay'


@pytest.mark.parametrize('kwargs', [
    {'initial_delay': 5.0, 'max_delay': 1.0},
    {'multiplier': 0.5},
    {'jitter': 'gaussian'},
    {'max_attempts': -1},
])
def test_backoff_policy_rejects_inconsistent_values(kwargs):
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_config_rejects_initial_delay_above_max_delay():
    values = dict(CameraConfig.default().__dict__)
    values.update(reconnect_initial_delay=20.0, reconnect_max_delay=2.0)
    with pytest.raises(ValueError, match='must not exceed'):
        CameraConfig.from_values(values)


# ---- the reconnect state machine ----------------------------------------------------


def _machine(clock, **policy):
    base = dict(initial_delay=1.0, max_delay=8.0, multiplier=2.0, jitter='none',
                stable_after=5.0)
    base.update(policy)
    return ReconnectMachine(BackoffPolicy(**base), max_consecutive_failures=3,
                            clock=clock, wall_clock=lambda: 1000.0 + clock(),
                            rng=random.Random(1))


def test_machine_reconnects_with_growing_delays_and_counts():
    clock = FakeClock()
    m = _machine(clock)
    assert m.start() == CameraState.CONNECTING and m.seconds_until_attempt() == 0.0
    assert m.on_open_failed('refused') == CameraState.RECONNECTING
    assert m.seconds_until_attempt() == 1.0
    clock.advance(1.0)
    m.on_open_failed('refused')
    assert m.backoff_sec == 2.0 and m.snapshot().failed_attempts == 2
    assert m.last_error == 'refused' and m.last_error_time == 1101.0
    assert m.on_opened() == CameraState.STREAMING and m.reconnects == 0
    m.on_frame()
    assert m.on_bad_frame('empty') == CameraState.STREAMING
    assert m.on_bad_frame('empty') == CameraState.STREAMING
    assert m.on_bad_frame('empty') == CameraState.RECONNECTING
    assert m.frames_failed == 3 and m.frames_ok == 1
    assert m.backoff_sec == 4.0, 'a short stream does not reset the schedule'
    clock.advance(4.0)
    m.on_opened()
    assert m.reconnects == 1
    clock.advance(6.0)  # stable for longer than stable_after
    m.on_frame()
    assert m.on_lost('gone') == CameraState.RECONNECTING and m.backoff_sec == 1.0


def test_machine_stall_end_and_give_up():
    clock = FakeClock()
    m = _machine(clock, max_attempts=2)
    m.start()
    m.on_opened()
    assert m.on_stall('no frame') == CameraState.STALLED
    assert m.seconds_until_attempt() == float('inf')
    assert m.on_released() == CameraState.RECONNECTING
    m.on_open_failed('refused')
    assert m.on_open_failed('refused') == CameraState.FAILED
    m.start()
    m.on_opened()
    assert m.on_end('end of video file') == CameraState.ENDED
    assert m.on_config_error('bad pipeline') == CameraState.FAILED
    assert m.stop() == CameraState.INACTIVE


@pytest.mark.parametrize('frame, expected, message', [
    (None, None, 'no frame'),
    (np.zeros((0, 0, 3), np.uint8), None, 'empty'),
    (np.zeros((4, 4, 3), np.float32), None, 'dtype'),
    (np.zeros((4, 4), np.uint8), None, 'HxWx3'),
    (np.zeros((4, 4, 3), np.uint8), (8, 8, 3), 'size changed'),
    ('junk', None, 'not an array'),
])
def test_check_frame_rejects_bad_frames(frame, expected, message):
    assert message in check_frame(frame, expected)


def test_check_frame_accepts_good_frame():
    assert check_frame(np.zeros((4, 4, 3), np.uint8), (4, 4, 3)) is None


# ---- the capture worker with a hanging source -----------------------------------------


def test_worker_abandons_hung_reads_without_unbounded_threads():
    """A read that never returns is abandoned; at most max_abandoned threads linger."""
    release = threading.Event()
    states = []
    frames = []
    machine = ReconnectMachine(BackoffPolicy(initial_delay=0.05, max_delay=0.05,
                                             jitter='none'))
    worker = CaptureWorker(lambda: HangingSource(release, good_frames=3),
                           CaptureConfig(stall_timeout=0.3, open_timeout=1.0,
                                         release_timeout=0.3, max_abandoned=2),
                           machine, on_frame=lambda f, s: frames.append(s),
                           on_status=lambda st: states.append(st.state))
    before = threading.active_count()
    worker.start()
    try:
        assert wait_until(lambda: CameraState.STALLED in states, 5.0)
        assert wait_until(lambda: 'still blocked' in worker.status().last_error, 10.0)
        assert len(frames) >= 3
        # Hung sessions are bounded: the supervisor plus max_abandoned.
        for _ in range(10):
            assert threading.active_count() <= before + 1 + 2
            time.sleep(0.05)
        assert worker.status().state == CameraState.RECONNECTING
    finally:
        released = worker.stop(timeout=0.5)
        release.set()
    assert not released, 'a hung read cannot be released in time'
    assert worker.wait_released(5.0)
    assert wait_until(lambda: threading.active_count() == before, 5.0)
    assert HangingSource.open_handles == 0


def test_worker_never_passes_on_bad_frames_and_reconnects_after_too_many():
    good = np.zeros((6, 8, 3), np.uint8)
    script = [good, None, good, np.zeros((0, 0, 3), np.uint8), np.zeros((5, 8, 3), np.uint8),
              good, None, np.zeros((6, 8), np.uint8), None]
    delivered, states = [], []
    machine = ReconnectMachine(BackoffPolicy(initial_delay=5.0, max_delay=5.0, jitter='none'),
                               max_consecutive_failures=3)
    worker = CaptureWorker(lambda: ScriptedSource(script), CaptureConfig(stall_timeout=2.0),
                           machine, on_frame=lambda f, s: delivered.append(f),
                           on_status=lambda st: states.append(st.state))
    worker.start()
    try:
        assert wait_until(lambda: CameraState.RECONNECTING in states, 5.0)
    finally:
        assert worker.stop()
    status = worker.status()
    assert len(delivered) == 3 and all(f.shape == (6, 8, 3) for f in delivered)
    # None, empty, wrong size (3 in a row ends at the good frame: 1+2), then None, 2-D, None.
    assert status.frames_failed == 6 and status.frames_ok == 3
    assert any('3 failed reads in a row' in e for e in status.recent_errors)
    assert any('size changed' in e for e in status.recent_errors)


# ---- outage logging, damaged files, quiet FFmpeg ---------------------------------------


def _status(state, failed=0, error='', backoff=0.0, damaged=False):
    from pianist_ros.camera.reconnect import CameraStatus
    return CameraStatus(state=state, frames_ok=0, frames_failed=0, reconnects=0,
                        failed_attempts=failed, backoff_sec=backoff, next_attempt_in=backoff,
                        last_error=error, last_error_time=None, consecutive_failures=0,
                        damaged=damaged)


def test_outage_log_reports_every_30_s_and_the_recovery():
    from pianist_ros.camera.outage import OutageLog
    clock = FakeClock()
    log = OutageLog('file:clip.mp4', throttle_sec=30.0, clock=clock)
    assert log.observe(_status(CameraState.CONNECTING)) == []
    assert log.observe(_status(CameraState.STREAMING)) == [(20, 'streaming from file:clip.mp4')]
    lines = log.observe(_status(CameraState.RECONNECTING, 0, 'video file not found: x', 0.2))
    assert lines == [(30, 'video file not found: x; retry 1 in 0.2 s')]
    lines = []
    for attempt in range(1, 42):  # 61.5 s of failures, one every 1.5 s
        clock.advance(1.5)
        lines += log.observe(_status(CameraState.RECONNECTING, attempt, 'gone', 1.5))
    assert len(lines) == 2, lines
    assert all(level == 30 for level, _ in lines)
    assert 'after 20 failed attempts over 30 s; last error: gone; next attempt in 1.5 s' \
        in lines[0][1]
    assert 'after 40 failed attempts over 60 s' in lines[1][1]
    clock.advance(1.0)
    assert log.observe(_status(CameraState.STREAMING)) == [
        (20, 'streaming again from file:clip.mp4 after 42 attempts, 62.5 s without frames')]


def test_outage_log_first_connect_after_failures_and_damaged_end():
    from pianist_ros.camera.outage import OutageLog
    clock = FakeClock()
    log = OutageLog('network:rtsp://h/x', clock=clock)
    log.observe(_status(CameraState.CONNECTING))
    assert log.observe(_status(CameraState.RECONNECTING, 1, 'refused', 0.5)) == [
        (30, 'refused; retry 2 in 0.5 s')]
    clock.advance(2.0)
    assert log.observe(_status(CameraState.RECONNECTING, 2, 'refused', 1.0)) == []
    assert log.observe(_status(CameraState.STREAMING)) == [
        (20, 'streaming from network:rtsp://h/x after 3 attempts, 2.0 s without frames')]
    level, text = log.observe(_status(CameraState.ENDED, error='damaged', damaged=True))[0]
    assert level == 40 and 'ended early: damaged' in text


def test_worker_reports_every_failed_open_attempt():
    statuses = []
    policy = BackoffPolicy(initial_delay=0.01, max_delay=0.02, jitter='none')
    machine = ReconnectMachine(policy)
    worker = CaptureWorker(lambda: make_source('/nonexistent/clip.mp4', SourceOptions()),
                           CaptureConfig(), machine, on_frame=lambda f, s: None,
                           on_status=statuses.append)
    worker.start()
    try:
        assert wait_until(lambda: any(s.failed_attempts >= 4 for s in statuses), 10.0)
    finally:
        worker.stop()
    attempts = [s.failed_attempts for s in statuses if s.state == CameraState.RECONNECTING]
    assert attempts[:4] == [1, 2, 3, 4]


def _truncated_clip(data_dir, tmp_path) -> str:
    clip = str(tmp_path / 'truncated.mp4')
    with open(os.path.join(data_dir, 'hands_clip.mp4'), 'rb') as src:
        data = src.read(150000)
    with open(clip, 'wb') as dst:
        dst.write(data)
    return clip


def test_truncated_file_is_reported_as_damaged_not_as_an_end(data_dir, tmp_path):
    from pianist_ros.camera.errors import SourceDamaged
    clip = _truncated_clip(data_dir, tmp_path)
    options = SourceOptions(fps=1000.0, use_file_fps=False)
    for loop, error in ((False, SourceDamaged), (True, SourceReadError)):
        source = make_source(clip, SourceOptions(**{**options.__dict__, 'loop': loop}))
        source.open()
        try:
            with pytest.raises(error, match=r'damaged or truncated at frame \d+ of 150'):
                for _ in range(200):
                    source.read()
        finally:
            source.close()
    # The complete file still ends cleanly.
    full = make_source(os.path.join(data_dir, 'hands_clip.mp4'), options)
    full.open()
    try:
        with pytest.raises(SourceEnded) as info:
            for _ in range(1000):
                full.read()
        assert not isinstance(info.value, SourceDamaged)
    finally:
        full.close()


def test_silent_server_is_reported_as_a_timeout():
    import socket
    from pianist_ros.camera.sources import open_failure_message
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)  # the kernel accepts the connection; nobody ever answers
    port = listener.getsockname()[1]
    try:
        source = make_source(f'http://127.0.0.1:{port}/video', SourceOptions(open_timeout=1.0))
        with pytest.raises(SourceOpenError, match=r'no answer within 1 s \(timeout\)'):
            source.open()
    finally:
        listener.close()
    refused = open_failure_message(f'rtsp://u:pw@127.0.0.1:{free_port()}/x', 0.01, 10.0)
    assert 'server unreachable' in refused and 'pw' not in refused


_CAPTURE_SCRIPT = '''
import sys
{imports}
for url in ('rtsp://127.0.0.1:1/x', sys.argv[1]):
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    while cap.isOpened() and cap.read()[0]:
        pass
    cap.release()
'''


def test_ffmpeg_and_opencv_stay_quiet_on_stderr(data_dir, tmp_path):
    import subprocess
    import sys
    moovless = str(tmp_path / 'moovless.mp4')
    with open(os.path.join(data_dir, 'hands_clip.mp4'), 'rb') as src:
        data = src.read()
    with open(moovless, 'wb') as dst:
        dst.write(data[:len(data) // 2] if data[-200000:].find(b'moov') < 0 else data[:4000])
    env = {k: v for k, v in os.environ.items() if k != 'OPENCV_FFMPEG_LOGLEVEL'}

    def stderr_of(imports: str) -> str:
        code = _CAPTURE_SCRIPT.format(imports=imports)
        for clip in (moovless, _truncated_clip(data_dir, tmp_path)):
            result = subprocess.run([sys.executable, '-c', code, clip], env=env,
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            yield result.stderr

    loud = ''.join(stderr_of('import cv2'))
    # The control proves the check can fail: plain OpenCV prints FFmpeg's chatter.
    assert '[tcp @' in loud and 'VIDEOIO(FFMPEG)' in loud
    quiet = ''.join(stderr_of('import pianist_ros.camera.sources\nimport cv2'))
    assert quiet == ''
