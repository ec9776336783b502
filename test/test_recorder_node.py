"""image_recorder over real DDS: topics, ~/enable from another node, diagnostics, process."""

import glob
import os
import signal
import time

import cv2
from diagnostic_msgs.msg import DiagnosticArray
import pytest
from rcl_interfaces.msg import Log
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Int32
from std_srvs.srv import SetBool

from pianist_ros.common import topics
from pianist_ros.recorder.node import ImageRecorderNode
from recorder_support import clip_frames
from recorder_support import jpegs
from recorder_support import pid_alive
from recorder_support import psnr
from recorder_support import shm_segments
from recorder_support import tmpfs
from support import REPO
from support import script
from support import spin_until
from support import start_process
from support import stop_process
from support import wait_until


def _image(frame, stamp_ns: int) -> Image:
    msg = Image()
    msg.header.stamp.sec = stamp_ns // 1_000_000_000
    msg.header.stamp.nanosec = stamp_ns % 1_000_000_000
    msg.header.frame_id = 'camera'
    msg.height, msg.width = frame.shape[:2]
    msg.encoding = 'bgr8'
    msg.step = frame.shape[1] * 3
    msg.data = frame.tobytes()
    return msg


def _params(tmp_path, **kw):
    values = {'output_dir': str(tmp_path), 'trigger.every_n': 1, 'min_free_bytes': 0,
              'backend': 'thread'}
    values.update(kw)
    return [Parameter(k, value=v) for k, v in values.items()]


def _status(diags: list, name: str = 'image_recorder: recorder'):
    for array in reversed(diags):
        for status in array.status:
            if status.name == name:
                return status, {kv.key: kv.value for kv in status.values}
    return None, {}


def test_records_topic_enable_service_and_diagnostics(ros_context, tmp_path, data_dir):
    frames = clip_frames(data_dir, 6)
    recorder = ImageRecorderNode(context=ros_context, parameter_overrides=_params(tmp_path))
    peer = Node('recorder_test_peer', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    diags = []
    try:
        executor.add_node(recorder)
        executor.add_node(peer)
        pub = peer.create_publisher(Image, topics.IMAGE_RAW, topics.SENSOR_QOS)
        peer.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, diags.append, 10)
        client = peer.create_client(SetBool, '/image_recorder/enable')
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        assert spin_until(executor, client.service_is_ready, 10.0)

        def publish(frame, stamp):
            pub.publish(_image(frame, stamp))

        def written():
            return len(jpegs(str(tmp_path)))

        publish(frames[0], 1_700_000_000_000_000_000)
        assert spin_until(executor, lambda: written() == 1, 10.0)

        # Disable over DDS: frames keep coming, nothing new is written.
        future = client.call_async(SetBool.Request(data=False))
        assert spin_until(executor, future.done, 10.0)
        assert future.result().success
        for i, frame in enumerate(frames[1:4]):
            publish(frame, 1_700_000_001_000_000_000 + i)
        spin_until(executor, lambda: False, 0.5)
        assert written() == 1

        future = client.call_async(SetBool.Request(data=True))
        assert spin_until(executor, future.done, 10.0) and future.result().success
        publish(frames[5], 1_700_000_002_000_000_000)
        assert spin_until(executor, lambda: written() == 2, 10.0)
        last = cv2.imread(jpegs(str(tmp_path))[-1])
        assert last.shape == frames[5].shape and psnr(last, frames[5]) > 33.0
        assert '20231114T221322' in os.path.basename(jpegs(str(tmp_path))[-1])

        assert spin_until(executor, lambda: _status(diags)[0] is not None
                          and _status(diags)[1].get('frames_written') == '2', 10.0)
        status, values = _status(diags)
        for key in ('backend', 'frames_written', 'frames_dropped', 'queue_depth',
                    'encode_write_ms_p50', 'encode_write_ms_p99', 'bytes_on_disk',
                    'disk_guard'):
            assert key in values, key
        assert values['backend'] == 'thread' and values['disk_guard'] == 'OK'
        assert int(values['bytes_on_disk']) > 0

        # Trigger parameters apply at run time; invalid values are refused.
        results = recorder.set_parameters([Parameter('trigger.every_n', value=0)])
        assert not results[0].successful
        results = recorder.set_parameters([Parameter('trigger.only_with_hands', value=True)])
        assert results[0].successful
        publish(frames[0], 1_700_000_003_000_000_000)
        spin_until(executor, lambda: False, 0.5)
        assert written() == 2  # no hands/count yet: not recorded
        hands_pub = peer.create_publisher(Int32, topics.HANDS_COUNT, topics.RESULT_QOS)
        assert spin_until(executor, lambda: hands_pub.get_subscription_count() > 0, 10.0)
        hands_pub.publish(Int32(data=1))
        spin_until(executor, lambda: False, 0.2)
        publish(frames[1], 1_700_000_004_000_000_000)
        assert spin_until(executor, lambda: written() == 3, 10.0)
    finally:
        executor.shutdown()
        peer.destroy_node()
        recorder.destroy_node()


def test_annotated_topic_parameter(ros_context, tmp_path, data_dir):
    frame = clip_frames(data_dir, 1)[0]
    recorder = ImageRecorderNode(context=ros_context, parameter_overrides=_params(
        tmp_path, topic='hands/image_annotated', backend='process'))
    peer = Node('recorder_test_peer2', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        executor.add_node(recorder)
        executor.add_node(peer)
        pub = peer.create_publisher(Image, topics.HANDS_IMAGE_ANNOTATED, topics.SENSOR_QOS)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 10.0)
        # Best effort: republish until the first frame lands (workers may still start).
        deadline = time.monotonic() + 30.0
        while not jpegs(str(tmp_path)) and time.monotonic() < deadline:
            pub.publish(_image(frame, time.time_ns()))
            spin_until(executor, lambda: bool(jpegs(str(tmp_path))), 0.3)
        assert jpegs(str(tmp_path))
        pids = recorder._recorder.backend.pids()
    finally:
        executor.shutdown()
        peer.destroy_node()
        recorder.destroy_node()
    assert not any(pid_alive(p) for p in pids)


class _LogRig:
    """An image_recorder node, a peer publishing frames and the node's /rosout lines."""

    def __init__(self, context, overrides, name):
        self.logs = []
        self.recorder = ImageRecorderNode(context=context, parameter_overrides=overrides)
        self.peer = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.recorder)
        self.executor.add_node(self.peer)
        self.pub = self.peer.create_publisher(Image, topics.IMAGE_RAW, topics.SENSOR_QOS)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.peer.create_subscription(Log, '/rosout', self._on_log, qos)
        assert spin_until(self.executor, lambda: self.pub.get_subscription_count() > 0, 10.0)

    def _on_log(self, msg):
        if msg.name == 'image_recorder':
            self.logs.append(msg)

    def feed_until(self, frame, predicate, timeout):
        """Publish a frame every 0.1 s until ``predicate()`` or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.pub.publish(_image(frame, time.time_ns()))
            spin_until(self.executor, predicate, 0.1)
        return predicate()

    def lines(self, level, text):
        return [m.msg for m in self.logs if m.level == level and text in m.msg]

    def close(self):
        self.executor.shutdown()
        self.peer.destroy_node()
        self.recorder.destroy_node()


def test_directory_error_is_logged_throttled_and_the_recovery_once(
        ros_context, tmp_path, data_dir):
    frame = clip_frames(data_dir, 1)[0]
    blocker = tmp_path / 'blocker'
    blocker.write_bytes(b'')  # the output directory would be under a regular file
    rig = _LogRig(ros_context, _params(tmp_path, output_dir=str(blocker / 'rec')),
                  'recorder_log_peer')
    try:
        assert rig.feed_until(frame, lambda: rig.lines(Log.ERROR, 'frames are dropped'), 10.0)
        line = rig.lines(Log.ERROR, 'frames are dropped')[0]
        assert 'cannot use the output directory' in line and str(blocker) in line, line
        # Throttled: frames keep failing every 0.1 s, one line per 10 s.
        rig.feed_until(frame, lambda: False, 2.5)
        assert len(rig.lines(Log.ERROR, 'frames are dropped')) == 1
        blocker.unlink()
        assert rig.feed_until(frame, lambda: rig.lines(Log.INFO, 'recording again'), 10.0)
        rig.feed_until(frame, lambda: False, 1.5)
        assert len(rig.lines(Log.INFO, 'recording again')) == 1
        assert 'frame(s) dropped meanwhile' in rig.lines(Log.INFO, 'recording again')[0]
        assert jpegs(str(blocker / 'rec'))
    finally:
        rig.close()


def test_full_disk_is_logged_with_what_happens_next(ros_context, tmp_path, data_dir):
    frame = clip_frames(data_dir, 1)[0]
    with tmpfs('256k') as root:
        if root is None:
            pytest.skip('cannot mount tmpfs here (needs root); the directory test covers logs')
        rig = _LogRig(ros_context, _params(tmp_path, output_dir=root), 'recorder_enospc_peer')
        try:
            assert rig.feed_until(frame, lambda: rig.lines(Log.ERROR, 'No space left'), 20.0)
            line = rig.lines(Log.ERROR, 'No space left')[0]
            assert line.startswith(f'cannot write {root}/session_'), line
            assert 'frames are dropped until space is back' in line
        finally:
            rig.close()


def test_killed_encoder_worker_is_logged_and_respawned(ros_context, tmp_path, data_dir):
    frame = clip_frames(data_dir, 1)[0]
    rig = _LogRig(ros_context, _params(tmp_path, backend='process', **{'process.workers': 1}),
                  'recorder_worker_peer')
    try:
        backend = rig.recorder._recorder.backend
        written = lambda: rig.recorder._recorder.snapshot()['frames_written']  # noqa: E731
        assert rig.feed_until(frame, lambda: written() >= 2, 30.0)
        victim = backend.pids()[0]
        os.kill(victim, signal.SIGKILL)
        assert rig.feed_until(frame, lambda: rig.lines(Log.WARN, 'respawned'), 15.0)
        line = rig.lines(Log.WARN, 'respawned')[0]
        assert f'(pid {victim}) exited with -9' in line, line
        before = written()
        assert rig.feed_until(frame, lambda: written() >= before + 2, 30.0), 'recording resumed'
        assert victim not in backend.pids()
        assert len(rig.lines(Log.WARN, 'respawned')) == 1, 'one death, one line'
    finally:
        rig.close()


def test_bad_backend_keeps_node_alive_with_error(ros_context, tmp_path):
    with pytest.raises(InvalidParameterValueException):
        ImageRecorderNode(context=ros_context,
                          parameter_overrides=_params(tmp_path, backend='gpu'))
    node = ImageRecorderNode(context=ros_context, parameter_overrides=_params(
        tmp_path, backend='gstreamer', **{'gstreamer.jpeg_encoder': 'nosuchenc'}))
    try:
        assert node._recorder is None and 'nosuchenc' in node._startup_error
    finally:
        node.destroy_node()


def test_console_script_sigint_flushes_and_leaves_nothing_behind(
        ros_context, tmp_path, data_dir):
    frames = clip_frames(data_dir, 10)
    out = tmp_path / 'rec'
    log = tmp_path / 'node.log'
    env = {'PYTHONPATH': REPO + os.pathsep + os.environ.get('PYTHONPATH', '')}
    proc = start_process([script('image_recorder'), '--ros-args', '-p', f'output_dir:={out}',
                          '-p', 'backend:=process', '-p', 'trigger.every_n:=1',
                          '-p', 'min_free_bytes:=0'], log_path=str(log), env=env)
    peer = Node('recorder_test_pub', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(peer)
    try:
        pub = peer.create_publisher(Image, topics.IMAGE_RAW, topics.SENSOR_QOS)
        assert spin_until(executor, lambda: pub.get_subscription_count() > 0, 30.0), \
            log.read_text()
        deadline = time.monotonic() + 30.0
        i = 0
        while len(jpegs(str(out))) < 5 and time.monotonic() < deadline:
            pub.publish(_image(frames[i % len(frames)], time.time_ns()))
            i += 1
            spin_until(executor, lambda: False, 0.1)
        assert len(jpegs(str(out))) >= 5, log.read_text()
        workers = [int(p.split('/')[2]) for p in glob.glob('/proc/[0-9]*/cmdline')
                   if _is_child_of(int(p.split('/')[2]), proc.pid)]
        assert workers, 'no encoder worker processes found'
        # The ring as the workers see it; /dev/shm as a whole is shared with other
        # engineers' concurrent runs, so only these names are checked afterwards.
        ring = set().union(*(_mapped_segments(p) for p in workers))
        assert ring, 'workers map no shared-memory segment'
    finally:
        code = stop_process(proc, signal.SIGINT, timeout=15.0)
        executor.shutdown()
        peer.destroy_node()
    text = log.read_text()
    assert code == 0, text
    assert 'recorder stopped' in text
    assert 'resource_tracker' not in text and 'Traceback' not in text, text
    assert wait_until(lambda: not any(pid_alive(p) for p in workers), 5.0)
    assert not ring & shm_segments(), ring & shm_segments()


def _is_child_of(pid: int, parent: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as handle:
            return int(handle.read().split(')')[-1].split()[1]) == parent
    except (OSError, ValueError, IndexError):
        return False


def _mapped_segments(pid: int) -> set[str]:
    """Return the psm_* shared-memory segments process ``pid`` has mapped."""
    try:
        with open(f'/proc/{pid}/maps', encoding='utf-8') as handle:
            return {line.split('/dev/shm/')[1].strip() for line in handle
                    if '/dev/shm/psm_' in line}
    except OSError:
        return set()
