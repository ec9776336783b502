"""ROS-free tests of the image recorder: triggers, queue, files, guards, backends."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest

from pianist_ros.recorder.backends import ThreadBackend
from pianist_ros.recorder.config import RecorderConfig
from pianist_ros.recorder.errors import FrameError
from pianist_ros.recorder.errors import StorageError
from pianist_ros.recorder.frames import to_array
from pianist_ros.recorder.gst_backend import element_available
from pianist_ros.recorder.policy import Decision
from pianist_ros.recorder.policy import DropOldestQueue
from pianist_ros.recorder.policy import TriggerPolicy
from pianist_ros.recorder.policy import TriggerSettings
from pianist_ros.recorder.recorder import assess
from pianist_ros.recorder.recorder import Recorder
from pianist_ros.recorder.recorder import shutdown_summary
from pianist_ros.recorder.recorder import StorageAlarm
from pianist_ros.recorder.recorder import worker_restart_line
from pianist_ros.recorder.storage import frame_name
from pianist_ros.recorder.storage import GuardState
from pianist_ros.recorder.storage import SessionStore
from pianist_ros.recorder.storage import write_atomic
from pianist_ros.recorder.storage import write_frame_files
from recorder_support import clip_frames
from recorder_support import jpegs
from recorder_support import pid_alive
from recorder_support import psnr
from recorder_support import shm_segments
from recorder_support import SlowBackend
from recorder_support import temp_files
from recorder_support import tmpfs
from support import REPO
from support import wait_until

#: JPEG quality 90 of real camera frames decodes back well above this (dB).
MIN_PSNR_DB = 33.0


def _cfg(tmp_path, **kw) -> RecorderConfig:
    base = dict(output_dir=str(tmp_path), trigger_every_n=1, min_free_bytes=0,
                max_total_bytes=0, queue_depth=8)
    base.update(kw)
    return RecorderConfig.from_values(base)


# ---- trigger policy and queue ---------------------------------------------------------

@pytest.mark.parametrize('settings,times,hands,expected', [
    (TriggerSettings(every_n=3), [i * 0.1 for i in range(9)], None,
     [0, 0, 1, 0, 0, 1, 0, 0, 1]),
    (TriggerSettings(every_n=1, max_rate_hz=2.0), [i * 0.1 for i in range(12)], None,
     [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]),
    (TriggerSettings(every_n=1, only_with_hands=True), [0.0, 0.1, 0.2], None, [0, 0, 0]),
    (TriggerSettings(every_n=1, only_with_hands=True), [0.0, 0.1, 0.2], 2, [1, 1, 1]),
    (TriggerSettings(every_n=1, only_with_hands=True), [0.0, 0.1, 0.2], 0, [0, 0, 0]),
    (TriggerSettings(every_n=1, only_with_hands=True, hands_max_age_sec=0.15),
     [0.0, 0.1, 0.2, 0.3], 1, [1, 1, 0, 0]),
])
def test_trigger_policy(settings, times, hands, expected):
    policy = TriggerPolicy(settings)
    if hands is not None:
        policy.set_hands(hands, 0.0)
    got = [int(policy.decide(t) is Decision.RECORD) for t in times]
    assert got == expected


def test_trigger_disabled_and_bad_settings():
    policy = TriggerPolicy(TriggerSettings(), enabled=False)
    assert policy.decide(0.0) is Decision.DISABLED
    policy.enabled = True
    assert policy.decide(0.0) is Decision.RECORD
    with pytest.raises(ValueError):
        TriggerSettings(every_n=0)


def test_drop_oldest_queue_counts_and_never_blocks():
    queue = DropOldestQueue(3)
    evicted = [queue.put(i) for i in range(5)]
    assert evicted == [None, None, None, 0, 1]
    assert queue.dropped == 2 and queue.put_count == 5
    assert [queue.get(0.0) for _ in range(4)] == [2, 3, 4, None]
    queue.close()
    with pytest.raises(RuntimeError):
        queue.put(9)


def test_to_array_handles_padding_and_rejects_bad_frames():
    data = bytes(range(2)) * 0 + bytes([1, 2, 3, 4, 5, 6, 0, 0] * 2)
    frame = to_array(2, 2, 8, 'bgr8', data)
    assert frame.shape == (2, 2, 3) and frame[1, 1].tolist() == [4, 5, 6]
    assert to_array(2, 3, 3, 'mono8', bytes(6)).shape == (2, 3)
    for args in [(2, 2, 8, 'bgr16', data), (2, 2, 4, 'bgr8', data), (4, 2, 8, 'bgr8', data),
                 (0, 2, 8, 'bgr8', data), (100000, 100000, 300000, 'bgr8', data)]:
        with pytest.raises(FrameError):
            to_array(*args)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        RecorderConfig.from_values({'backend': 'gpu'})
    with pytest.raises(ValueError):
        RecorderConfig.from_values({'nope': 1})
    assert RecorderConfig.from_values({'trigger_max_rate_hz': 2}).trigger_max_rate_hz == 2.0


# ---- files and disk guards --------------------------------------------------------------

def test_atomic_write_recreates_vanished_dir_and_leaves_no_temp(tmp_path):
    target = tmp_path / 'gone' / 'a.jpg'
    assert write_atomic(str(target), b'abc') == 3
    assert target.read_bytes() == b'abc'
    assert not [p for p in os.listdir(target.parent) if p.startswith('.')]
    blocker = tmp_path / 'file'
    blocker.write_bytes(b'')
    with pytest.raises(StorageError):
        write_atomic(str(blocker / 'x.jpg'), b'abc')


def test_rotation_deletes_oldest_across_sessions(tmp_path):
    old = SessionStore(str(tmp_path), session='session_20200101T000000Z_1')
    old.open()
    for seq in range(3):
        path = old.path_for(seq, 1_600_000_000_000_000_000 + seq)
        write_atomic(path, b'x' * 100)
    store = SessionStore(str(tmp_path), max_total_bytes=450, session='session_20990101T000000Z_2')
    store.open()
    assert store.bytes_on_disk == 300
    for seq in range(3):
        path = store.path_for(seq, 1_700_000_000_000_000_000 + seq)
        write_atomic(path, b'y' * 100)
        store.add((path,), 100)
    assert store.bytes_on_disk <= 450 and store.files_rotated == 2
    remaining = sorted(os.listdir(old.session_dir))
    assert len(remaining) == 1 and remaining[0].startswith('00000002')
    assert len(os.listdir(store.session_dir)) == 3


def test_quota_with_real_recorder_keeps_total_below_limit(tmp_path, data_dir):
    frames = clip_frames(data_dir, 12)
    rec = Recorder(_cfg(tmp_path, backend='thread', max_total_bytes=200_000, sidecar=True))
    rec.start()
    try:
        for frame in frames:
            rec.offer(frame, 'bgr8', time.time_ns())
            wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 5.0)
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 12, 10.0)
    finally:
        snap = rec.close(5.0)
    on_disk = sum(os.path.getsize(p) for p in jpegs(str(tmp_path)))
    on_disk += sum(os.path.getsize(p) for p in
                   [os.path.splitext(p)[0] + '.json' for p in jpegs(str(tmp_path))])
    assert snap['files_rotated'] > 0
    assert on_disk <= 200_000 and on_disk == snap['bytes_on_disk']
    # The newest frame survives rotation, the oldest does not.
    names = [os.path.basename(p) for p in jpegs(str(tmp_path))]
    assert names[-1].startswith('00000012') and not names[0].startswith('00000001')


def test_min_free_bytes_on_small_tmpfs_stops_writing_without_crash(data_dir, tmp_path):
    frames = clip_frames(data_dir, 40)
    with tmpfs('1m') as root:
        if root is None:
            pytest.skip('cannot mount tmpfs here (needs root); quota test covers rotation')
        rec = Recorder(_cfg(tmp_path, output_dir=root, backend='thread',
                            min_free_bytes=600_000, sidecar=False))
        rec.start()
        try:
            for frame in frames:
                rec.offer(frame, 'bgr8', time.time_ns())
                wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 5.0)
            assert wait_until(lambda: rec.snapshot()['disk_guard'] == 'LOW_DISK', 10.0)
            snap = rec.snapshot()
            level, message = assess(snap, None)
            assert level == 'ERROR' and 'min_free_bytes' in message
            assert snap['dropped_disk_guard'] > 0 and snap['write_errors'] == 0
            assert 0 < snap['frames_written'] < 40
            # Space comes back (an operator deletes files): recording resumes.
            for path in jpegs(root):
                os.unlink(path)
            before = snap['frames_written']
            rec.offer(frames[0], 'bgr8', time.time_ns())
            assert wait_until(lambda: rec.snapshot()['frames_written'] > before, 5.0)
        finally:
            rec.close(2.0)


def test_full_filesystem_is_reported_and_leaves_no_partial_jpeg(data_dir, tmp_path):
    frames = clip_frames(data_dir, 30)
    with tmpfs('256k') as root:
        if root is None:
            pytest.skip('cannot mount tmpfs here (needs root)')
        rec = Recorder(_cfg(tmp_path, output_dir=root, backend='process', min_free_bytes=0))
        rec.start()
        try:
            rec.backend.wait_ready(30.0)
            for frame in frames:
                rec.offer(frame, 'bgr8', time.time_ns())
                time.sleep(0.01)
            assert wait_until(lambda: rec.snapshot()['write_errors'] > 0, 10.0)
        finally:
            snap = rec.close(3.0)
        assert 'No space left' in snap['last_error']
        for path in jpegs(root):  # every final-name JPEG is complete
            assert cv2.imread(path) is not None, path
        assert not temp_files(root)


def test_read_only_directory_is_reported_not_raised(data_dir, tmp_path):
    frames = clip_frames(data_dir, 3)
    with tmpfs('1m', read_only=True) as root:
        if root is None:
            root = str(tmp_path / 'file')  # fallback: a path under a regular file
            with open(root, 'wb'):
                pass
        rec = Recorder(_cfg(tmp_path, output_dir=os.path.join(root, 'rec'), backend='thread'))
        rec.start()
        try:
            assert rec.snapshot()['disk_guard'] == 'DIR_ERROR'
            for frame in frames:
                rec.offer(frame, 'bgr8', time.time_ns())
            assert wait_until(lambda: rec.snapshot()['dropped_disk_guard'] == 3, 5.0)
            level, message = assess(rec.snapshot(), None)
            assert level == 'ERROR' and 'output directory' in message
        finally:
            rec.close(1.0)


def test_vanished_session_directory_is_recreated(data_dir, tmp_path):
    frames = clip_frames(data_dir, 2)
    rec = Recorder(_cfg(tmp_path, backend='thread'))
    rec.start()
    try:
        rec.offer(frames[0], 'bgr8', time.time_ns())
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 1, 5.0)
        for name in os.listdir(rec.store.session_dir):
            os.unlink(os.path.join(rec.store.session_dir, name))
        os.rmdir(rec.store.session_dir)
        rec.offer(frames[1], 'bgr8', time.time_ns())
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 2, 5.0)
        assert len(jpegs(str(tmp_path))) == 1
    finally:
        rec.close(1.0)


# ---- backends: real JPEGs decoded back -----------------------------------------------------

def _need_gst(*elements: str) -> None:
    """Skip unless the GStreamer elements exist.

    Checked inside the test, never at collection: Gst.init() in a process that has
    loaded cv2 but not yet rclpy makes the first rclpy node of that process crash
    (see docs/recorder.md), and collection runs before other files' ROS tests.
    """
    for element in elements:
        if not element_available(element):
            pytest.skip(f'GStreamer element {element} not installed '
                        '(scripts/install-system-deps.sh installs it)')


@pytest.mark.parametrize('backend', ['thread', 'process', 'gstreamer'])
def test_backend_writes_decodable_jpegs_with_sidecars(backend, data_dir, tmp_path):
    if backend == 'gstreamer':
        _need_gst('jpegenc', 'videoconvert')
    frames = clip_frames(data_dir, 6)
    frames.append(cv2.resize(frames[0], (1280, 720)))  # a size change mid-session
    rec = Recorder(_cfg(tmp_path, backend=backend, jpeg_quality=90))
    before = shm_segments()
    rec.start()
    try:
        rec.set_hands(2)
        for i, frame in enumerate(frames):
            rec.offer(frame, 'bgr8', 1_700_000_000_000_000_000 + i * 1000)
            assert wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 30.0)
        assert wait_until(lambda: rec.snapshot()['frames_written'] == len(frames), 30.0), \
            rec.snapshot()
    finally:
        snap = rec.close(5.0)
    files = jpegs(str(tmp_path))
    assert len(files) == len(frames) and snap['frames_dropped'] == 0
    for path, frame in zip(files, frames):
        image = cv2.imread(path)
        assert image.shape == frame.shape
        assert psnr(image, frame) > MIN_PSNR_DB, (path, psnr(image, frame))
        with open(os.path.splitext(path)[0] + '.json', encoding='utf-8') as handle:
            side = json.load(handle)
        assert side['hands'] == 2 and side['backend'] == backend
        assert os.path.basename(path).startswith(f'{side["seq"]:08d}_')
        assert side['stamp'] in os.path.basename(path)
    assert snap['encode_write_ms_p99'] >= snap['encode_write_ms_p50'] > 0
    assert not temp_files(str(tmp_path))
    assert shm_segments() <= before


def _frame_files(root: str) -> tuple[set[str], set[str]]:
    """Return the stems of the final-name JPEG files and JSON sidecars under ``root``."""
    stems: dict[str, set[str]] = {'.jpg': set(), '.json': set()}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            stem, suffix = os.path.splitext(name)
            if suffix in stems and not name.startswith('.'):
                stems[suffix].add(os.path.join(dirpath, stem))
    return stems['.jpg'], stems['.json']


def _assert_counts_add_up(snap: dict) -> None:
    assert snap['frames_written'] + snap['frames_dropped'] == snap['frames_triggered'], snap
    assert snap['frames_dropped'] == sum(v for k, v in snap.items() if k.startswith('dropped_'))


def test_frame_files_never_leave_an_orphan_sidecar(tmp_path):
    # The JPEG cannot be put in place (a directory holds its name): no sidecar either.
    blocked = tmp_path / 'a.jpg'
    (blocked / 'x').mkdir(parents=True)
    with pytest.raises(StorageError):
        write_frame_files(str(blocked), b'jpeg', '{}')
    assert not (tmp_path / 'a.json').exists()
    # The sidecar cannot be put in place: the JPEG goes too.
    (tmp_path / 'b.json' / 'x').mkdir(parents=True)
    with pytest.raises(StorageError):
        write_frame_files(str(tmp_path / 'b.jpg'), b'jpeg', '{}')
    assert not (tmp_path / 'b.jpg').exists()
    assert write_frame_files(str(tmp_path / 'c.jpg'), b'jpeg', '{}') == (
        6, (str(tmp_path / 'c.jpg'), str(tmp_path / 'c.json')))
    assert not temp_files(str(tmp_path.parent))


@pytest.mark.parametrize('backend', ['thread', 'process'])
def test_failed_writes_count_as_dropped_and_leave_no_orphans(backend, data_dir, tmp_path):
    frames = clip_frames(data_dir, 5)
    stamps = [1_700_000_000_000_000_000 + i * 1000 for i in range(5)]
    rec = Recorder(_cfg(tmp_path, backend=backend, sidecar=True))
    rec.start()
    try:
        # Frames 2 and 4 cannot be written: a directory already holds their JPEG name.
        for seq in (2, 4):
            os.makedirs(os.path.join(rec.store.session_dir,
                                     frame_name(seq, stamps[seq - 1]) + '.jpg', 'x'))
        for frame, stamp in zip(frames, stamps):
            rec.offer(frame, 'bgr8', stamp)
            assert wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 30.0)
        assert wait_until(lambda: rec.snapshot()['frames_written'] + rec.snapshot()[
            'write_errors'] == 5, 30.0), rec.snapshot()
    finally:
        snap = rec.close(5.0)
    assert snap['frames_written'] == 3 and snap['write_errors'] == 2
    assert snap['dropped_write_error'] == 2 and snap['frames_dropped'] == 2
    _assert_counts_add_up(snap)
    jpg, side = _frame_files(str(tmp_path))
    assert len(jpg) == 3 and jpg == side
    line = shutdown_summary(snap)
    assert '5 triggered, 3 written, 2 dropped (2 write error)' in line, line
    assert 'unaccounted' not in line


def test_full_tmpfs_counts_every_frame_and_pairs_every_file(data_dir, tmp_path):
    frames = clip_frames(data_dir, 40)
    with tmpfs('1m') as root:
        if root is None:
            pytest.skip('cannot mount tmpfs here (needs root); the blocked-name test covers it')
        rec = Recorder(_cfg(tmp_path, output_dir=root, backend='process', min_free_bytes=0,
                            sidecar=True))
        rec.start()
        try:
            rec.backend.wait_ready(30.0)
            for frame in frames:
                rec.offer(frame, 'bgr8', time.time_ns())
                wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 5.0)
            assert wait_until(lambda: rec.snapshot()['write_errors'] > 0, 10.0)
        finally:
            snap = rec.close(5.0)
        assert 'No space left' in snap['last_error']
        assert snap['dropped_write_error'] == snap['write_errors'] > 0
        _assert_counts_add_up(snap)
        jpg, side = _frame_files(root)
        assert jpg == side and len(jpg) == snap['frames_written']
        assert 'write error' in shutdown_summary(snap)
        assert not temp_files(root)


def test_storage_alarm_logs_trouble_and_the_recovery_once():
    alarm = StorageAlarm()
    ok = {'disk_guard': 'OK', 'frames_written': 5, 'write_errors': 0, 'frames_dropped': 0,
          'last_error': '', 'session_dir': '/rec/session_1'}
    assert alarm.update(ok) is None
    enospc = 'StorageError: cannot write /rec/session_1/6.jpg: [Errno 28] No space left on device'
    full = dict(ok, write_errors=3, frames_dropped=3, last_error=enospc)
    level, text = alarm.update(full)
    assert level == 'ERROR' and text.startswith('cannot write /rec/session_1/6.jpg: [Errno 28]')
    assert 'frames are dropped until space is back' in text and '3 failed writes' in text
    assert alarm.update(dict(full, write_errors=5, frames_dropped=5))[0] == 'ERROR'
    assert alarm.update(dict(full, write_errors=5, frames_dropped=5)) is None  # no news
    back = dict(full, write_errors=5, frames_dropped=5, frames_written=6)
    level, text = alarm.update(back)
    assert level == 'INFO' and 'recording again into /rec/session_1' in text
    assert '5 frame(s) dropped meanwhile' in text
    assert alarm.update(dict(back, frames_written=7)) is None  # the recovery only once
    gone = dict(back, disk_guard='DIR_ERROR', frames_dropped=6,
                last_error='output directory /rec/session_1: [Errno 30] Read-only file system')
    level, text = alarm.update(gone)
    assert level == 'ERROR' and 'cannot use the output directory /rec/session_1' in text
    assert 'retried on every frame' in text and alarm.problem == 'directory'
    low = dict(gone, disk_guard='LOW_DISK', last_error='free space 10 B below min_free_bytes')
    assert alarm.update(low)[0] == 'WARN'
    assert alarm.update(dict(low, disk_guard='OK', frames_written=8))[0] == 'INFO'
    assert alarm.problem == ''


def test_shutdown_summary_names_every_cause():
    snap = {'frames_triggered': 449, 'frames_written': 45, 'frames_dropped': 404,
            'dropped_queue_full': 0, 'dropped_write_error': 404}
    assert shutdown_summary(snap) == ('recorder stopped: 449 triggered, 45 written, '
                                      '404 dropped (404 write error)')
    assert 'unaccounted' in shutdown_summary(dict(snap, frames_dropped=0))


@pytest.mark.parametrize('encoding', ['rgb8', 'mono8'])
def test_process_backend_other_encodings(encoding, data_dir, tmp_path):
    bgr = clip_frames(data_dir, 1)[0]
    frame = (cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if encoding == 'rgb8'
             else cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    rec = Recorder(_cfg(tmp_path, backend='process', process_workers=1))
    rec.start()
    try:
        rec.offer(frame, encoding, time.time_ns())
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 1, 30.0)
    finally:
        rec.close(2.0)
    image = cv2.imread(jpegs(str(tmp_path))[0], cv2.IMREAD_UNCHANGED)
    expected = bgr if encoding == 'rgb8' else frame
    assert image.shape == expected.shape and psnr(image, expected) > MIN_PSNR_DB


# ---- never block: drop oldest, bounded shutdown ------------------------------------------

def test_slow_backend_drops_oldest_and_never_blocks_offer(data_dir, tmp_path):
    frames = clip_frames(data_dir, 30)
    slow = SlowBackend(delay=0.2)
    rec = Recorder(_cfg(tmp_path, queue_depth=3), backend=slow)
    rec.start()
    try:
        worst = 0.0
        for i, frame in enumerate(frames):
            start = time.perf_counter()
            rec.offer(frame, 'bgr8', 1_700_000_000_000_000_000 + i)
            worst = max(worst, time.perf_counter() - start)
        # 30 frames offered in a burst; the slow encoder took at most 1-2 so far.
        snap = rec.snapshot()
        assert snap['dropped_queue_full'] >= 30 - 3 - 2
        assert snap['queue_depth'] == 3
        assert worst < 0.05, f'offer blocked for {worst:.3f} s'
    finally:
        snap = rec.close(2.0)
    # The survivors are the newest frames: the last three offered were written.
    stamps = sorted(json.load(open(os.path.splitext(p)[0] + '.json'))['stamp_ns']
                    for p in jpegs(str(tmp_path)))
    assert stamps[-3:] == [1_700_000_000_000_000_000 + i for i in (27, 28, 29)]
    accounted = (snap['frames_written'] + snap['frames_dropped'])
    assert accounted == snap['frames_triggered'] == 30


def test_shutdown_flush_is_bounded_and_counts_the_rest(data_dir, tmp_path):
    frames = clip_frames(data_dir, 8)
    rec = Recorder(_cfg(tmp_path, queue_depth=8), backend=SlowBackend(delay=0.3))
    rec.start()
    for frame in frames:
        rec.offer(frame, 'bgr8', time.time_ns())
    start = time.monotonic()
    snap = rec.close(0.7)
    elapsed = time.monotonic() - start
    assert elapsed < 0.7 + 2.0, elapsed
    assert snap['dropped_shutdown'] > 0
    assert snap['frames_written'] + snap['frames_dropped'] == 8
    assert rec.offer(frames[0], 'bgr8', 1) is Decision.DISABLED


def test_process_worker_sigkill_is_detected_respawned_and_leak_free(data_dir, tmp_path):
    frames = clip_frames(data_dir, 10)
    before = shm_segments()
    rec = Recorder(_cfg(tmp_path, backend='process', process_workers=2, queue_depth=16))
    rec.start()
    backend = rec.backend
    try:
        assert backend.wait_ready(30.0)
        old_pids = backend.pids()
        rec.offer(frames[0], 'bgr8', time.time_ns())
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 1, 10.0)
        names = backend.segment_names()
        assert names and all(n in shm_segments() for n in names)
        os.kill(old_pids[0], signal.SIGKILL)
        assert wait_until(lambda: rec.snapshot()['worker_restarts'] == 1, 10.0)
        assert wait_until(lambda: backend.wait_ready(0.0), 30.0)
        assert wait_until(lambda: not pid_alive(old_pids[0]), 5.0)
        assert old_pids[0] not in backend.pids() and len(backend.pids()) == 2
        for frame in frames[1:]:
            rec.offer(frame, 'bgr8', time.time_ns())
            wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 10.0)
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 10, 20.0), rec.snapshot()
        assert assess(rec.snapshot(), {'worker_restarts': 0})[0] == 'WARN'
        pids = backend.pids()
    finally:
        rec.close(3.0)
    assert not any(pid_alive(p) for p in pids)
    assert not (set(names) & shm_segments())
    assert shm_segments() <= before


_LEAK_SCRIPT = textwrap.dedent('''
    import os, signal, sys, time
    import numpy as np
    from pianist_ros.recorder.config import RecorderConfig
    from pianist_ros.recorder.recorder import Recorder

    def main():
        cfg = RecorderConfig.from_values(dict(output_dir=sys.argv[1], backend='process',
                                              trigger_every_n=1, min_free_bytes=0,
                                              queue_depth=4, process_workers=2))
        rec = Recorder(cfg)
        rec.start()
        rec.backend.wait_ready(30)
        frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
        for i in range(20):
            rec.offer(frame, 'bgr8', time.time_ns())
            if i == 5:
                os.kill(rec.backend.pids()[0], signal.SIGKILL)
            time.sleep(0.01)
        names = rec.backend.segment_names()
        snap = rec.close(3.0)
        print('RESULT', snap['frames_written'], snap['frames_dropped'],
              snap['worker_restarts'], ','.join(names))

    if __name__ == '__main__':
        main()
''')


def test_no_resource_tracker_warnings_after_worker_kill(tmp_path):
    script = tmp_path / 'leak.py'
    script.write_text(_LEAK_SCRIPT)
    before = shm_segments()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, str(script), str(tmp_path / 'out')],
                            capture_output=True, text=True, timeout=90, env=env)
    assert result.returncode == 0, result.stderr
    assert 'resource_tracker' not in result.stderr and 'leaked' not in result.stderr, \
        result.stderr
    fields = [line for line in result.stdout.splitlines() if line.startswith('RESULT')]
    written, dropped, restarts, names = fields[0].split()[1:]
    assert int(restarts) == 1 and int(written) + int(dropped) == 20 and int(written) > 0
    assert names and not set(names.split(',')) & shm_segments()
    assert shm_segments() <= before


# ---- GStreamer H.264 video mode --------------------------------------------------------------

def test_gstreamer_h264_mode_writes_one_playable_video(data_dir, tmp_path):
    _need_gst('x264enc', 'matroskamux', 'videoconvert')
    frames = clip_frames(data_dir, 20)
    rec = Recorder(_cfg(tmp_path, backend='gstreamer', gstreamer_mode='h264', sidecar=False))
    rec.start()
    try:
        for i, frame in enumerate(frames):
            rec.offer(frame, 'bgr8', 1_700_000_000_000_000_000 + i * 33_000_000)
            wait_until(lambda: rec.snapshot()['queue_depth'] == 0, 5.0)
        assert wait_until(lambda: rec.snapshot()['frames_written'] == 20, 10.0)
    finally:
        snap = rec.close(5.0)
    videos = [os.path.join(rec.store.session_dir, n) for n in os.listdir(rec.store.session_dir)]
    assert len(videos) == 1 and videos[0].endswith('.mkv'), videos
    assert snap['bytes_on_disk'] == os.path.getsize(videos[0]) > 0
    cap = cv2.VideoCapture(videos[0])
    decoded = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        decoded.append(image)
    cap.release()
    assert len(decoded) == 20
    assert decoded[-1].shape == frames[-1].shape
    assert psnr(decoded[-1], frames[-1]) > 25.0


def test_assess_levels():
    ok = {'enabled': True, 'backend': 'process', 'disk_guard': 'OK', 'frames_written': 5}
    assert assess(ok, None)[0] == 'OK'
    assert assess(dict(ok, frames_dropped=2), dict(ok, frames_dropped=1))[0] == 'WARN'
    assert assess(dict(ok, write_errors=1), dict(ok))[0] == 'ERROR'
    assert assess(dict(ok, disk_guard='LOW_DISK'), None)[0] == 'ERROR'
    assert GuardState.OK.name == 'OK'


def test_thread_backend_reports_unwritable_target(tmp_path):
    results = []
    backend = ThreadBackend(90)
    backend.start(results.append)
    from pianist_ros.recorder.backends import Job
    blocker = tmp_path / 'f'
    blocker.write_bytes(b'')
    backend.submit(Job(1, np.zeros((8, 8, 3), np.uint8), 'bgr8', str(blocker / 'a.jpg'),
                       None), 1.0)
    assert len(results) == 1 and not results[0].ok and results[0].error


def test_worker_restart_line_names_each_new_death_once():
    snap = {'worker_restarts': 0, 'last_worker_error': ''}
    assert worker_restart_line(None, snap) is None
    died = {'worker_restarts': 1,
            'last_worker_error': 'worker 0 (pid 7) exited with -9; 1 frame(s) lost'}
    line = worker_restart_line(None, died)  # a death before the first look still counts
    assert line.startswith('1 encoder worker(s) died') and 'pid 7' in line
    assert worker_restart_line(died, died) is None
    assert '2 in total' in worker_restart_line(died, dict(died, worker_restarts=2))
