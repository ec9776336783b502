"""The hand_detector node with real rclpy nodes over DDS, and cv_bridge-made messages."""

import os
import signal
import time

import cv2
from cv_bridge import CvBridge
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rcl_interfaces.msg import Log
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Int32
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

from detection_support import match_by_x
from detection_support import true_hands
from pianist_ros.common import topics
from pianist_ros.detection import imaging
from pianist_ros.detection import packing
from pianist_ros.detection.errors import UnsupportedEncodingError
from pianist_ros.detection.node import HandDetectorNode
from support import image_rows
from support import spin_until

ENCODINGS = ('bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8')
STATUS_NAME = 'hand_detector: detector'
STATIC_SETTINGS = [Parameter('static_image_mode', value=True),
                   Parameter('max_num_hands', value=4),
                   Parameter('model_complexity', value=1),
                   Parameter('diagnostic_updater.period', value=0.2)]


# ---- sensor_msgs/Image made by cv_bridge ---------------------------------------------

@pytest.mark.parametrize('encoding', ENCODINGS)
def test_cv_bridge_images_convert_for_every_accepted_encoding(encoding):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    msg = CvBridge().cv2_to_imgmsg(imaging.from_rgb(rgb, encoding), encoding)
    assert isinstance(msg, Image) and msg.encoding == encoding
    out = imaging.to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data)
    if encoding == 'mono8':
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))
    else:
        np.testing.assert_array_equal(out, rgb)
    # cv_bridge's own conversion of the same message agrees with ours.
    np.testing.assert_array_equal(out, CvBridge().imgmsg_to_cv2(msg, 'rgb8'))


@pytest.mark.parametrize('encoding, dtype, channels', [
    ('mono16', np.uint16, 1), ('bgr16', np.uint16, 3), ('rgba16', np.uint16, 4),
    ('32FC1', np.float32, 1), ('8UC2', np.uint8, 2)])
def test_cv_bridge_images_in_other_encodings_are_rejected(encoding, dtype, channels):
    pixels = np.ones((4, 6, channels), dtype=dtype).squeeze()
    msg = CvBridge().cv2_to_imgmsg(pixels, encoding)
    with pytest.raises(UnsupportedEncodingError):
        imaging.to_rgb(msg.encoding, msg.width, msg.height, msg.step, msg.data)


# ---- the node over DDS -----------------------------------------------------------------

def _image(pixels, encoding, frame_id, clock, step=None, data=None):
    """Build a sensor_msgs/Image by hand (not through cv_bridge)."""
    msg = Image()
    msg.header.frame_id = frame_id
    msg.header.stamp = clock.now().to_msg()
    msg.height, msg.width = pixels.shape[:2]
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = pixels.strides[0] if step is None else step
    msg.data = np.ascontiguousarray(pixels).tobytes() if data is None else data
    return msg


class Rig:
    """A detector node plus a client node that publishes frames and records results."""

    def __init__(self, context, overrides, annotated=False):
        self.counts, self.clouds, self.markers, self.annotated = [], [], [], []
        self.statuses, self.logs = [], []
        self.detector = HandDetectorNode(context=context, parameter_overrides=overrides)
        self.client = Node('detector_test_client', context=context)
        self.pub = self.client.create_publisher(Image, topics.IMAGE_RAW, topics.SENSOR_QOS)
        sub = self.client.create_subscription
        sub(Int32, topics.HANDS_COUNT, lambda m: self.counts.append(m.data), topics.RESULT_QOS)
        sub(PointCloud2, topics.HANDS_LANDMARKS, self.clouds.append, topics.RESULT_QOS)
        sub(MarkerArray, topics.HANDS_MARKERS, self.markers.append, topics.RESULT_QOS)
        sub(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, 10)
        rosout_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)
        sub(Log, '/rosout', self._on_log, rosout_qos)
        if annotated:
            sub(Image, topics.HANDS_IMAGE_ANNOTATED, self.annotated.append, topics.SENSOR_QOS)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.detector)
        self.executor.add_node(self.client)
        assert self.spin_until(lambda: self.pub.get_subscription_count() > 0
                               and self.client.count_publishers(topics.HANDS_LANDMARKS) > 0
                               and (not annotated or self.detector.count_subscribers(
                                   topics.HANDS_IMAGE_ANNOTATED) > 0), 15.0)

    def _on_diagnostics(self, msg):
        self.statuses += [s for s in msg.status if s.name == STATUS_NAME]

    def _on_log(self, msg):
        if msg.name == 'hand_detector':
            self.logs.append(msg)

    def spin_until(self, predicate, timeout):
        return spin_until(self.executor, predicate, timeout)

    def last_values(self):
        return {kv.key: kv.value for kv in self.statuses[-1].values} if self.statuses else {}

    def detect(self, bgr, frame_id, attempts=3, timeout=20.0):
        """Publish one frame and return (count, cloud) of its result."""
        for _ in range(attempts):
            self.pub.publish(_image(bgr, 'bgr8', frame_id, self.client.get_clock()))

            def answered():
                ids = [c.header.frame_id for c in self.clouds]
                return frame_id in ids and len(self.counts) > ids.index(frame_id)

            # Best effort: a frame lost on the way is published again.
            if self.spin_until(answered, timeout):
                index = [c.header.frame_id for c in self.clouds].index(frame_id)
                return self.counts[index], self.clouds[index]
        raise AssertionError(f'no result for {frame_id} after {attempts} attempts')

    def close(self):
        self.executor.shutdown(timeout_sec=5.0)
        self.detector.destroy_node()
        self.client.destroy_node()


def test_counts_landmarks_and_markers_match_the_manifest(ros_context, data_dir, manifest):
    rig = Rig(ros_context, STATIC_SETTINGS, annotated=True)
    try:
        rows = sorted(image_rows(manifest), key=lambda r: r['file'])
        assert len(rows) >= 14
        for row in rows:
            bgr = cv2.imread(os.path.join(data_dir, row['file']))
            count, cloud = rig.detect(bgr, row['file'])
            expected = int(row['hands_detected'])
            assert count == expected, row['file']
            assert cloud.width == 21 * expected and cloud.height == 1
            assert [f.name for f in cloud.fields] == [f[0] for f in packing.FIELDS]
            assert cloud.point_step == packing.POINT_STEP and not cloud.is_bigendian
            hands = packing.unpack(bytes(cloud.data), cloud.point_step)
            assert len(hands) == expected and all(len(h.landmarks) == 21 for h in hands)
            if true_hands(row):
                pairs = match_by_x(true_hands(row), [(h.handedness, h.center_x) for h in hands])
                assert all(truth == got for truth, got, _ in pairs), (row['file'], pairs)
        # Markers: delete-all first, then spheres and bones per hand; the last frame
        # processed was a hand image, the negatives gave only the delete-all.
        assert rig.spin_until(lambda: len(rig.markers) >= len(rows), 10.0)
        for msg, row in zip(rig.markers, rows):
            kinds = [m.type for m in msg.markers[1:]]
            assert msg.markers[0].action == Marker.DELETEALL
            assert kinds == [Marker.SPHERE_LIST, Marker.LINE_LIST] * int(row['hands_detected'])
            for marker in msg.markers[1:]:
                assert marker.header.frame_id == row['file']
                assert len(marker.points) == (21 if marker.type == Marker.SPHERE_LIST else 42)
        assert rig.spin_until(lambda: len(rig.annotated) > 0, 10.0)
        first = rig.annotated[0]
        assert first.encoding == 'bgr8' and first.header.frame_id in {r['file'] for r in rows}
        assert len(first.data) == first.step * first.height
        # Run-time parameter change: refused out of range, applied on the next frame.
        result = rig.detector.set_parameters([Parameter('max_num_hands', value=9)])[0]
        assert not result.successful
        result = rig.detector.set_parameters([Parameter('max_num_hands', value=1)])[0]
        assert result.successful
        bgr = cv2.imread(os.path.join(data_dir, 'piano_duet_4hands.jpg'))
        assert rig.detect(bgr, 'duet-one-hand')[0] == 1
        assert rig.spin_until(lambda: rig.last_values().get('frames_processed') == str(
            len(rows) + 1), 5.0), rig.last_values()
        values = rig.last_values()
        assert values['frames_rejected'] == '0' and values['hands'] == '1'
        assert float(values['latency_ms_p50']) > 0.0
        assert 0.0 <= float(values['last_frame_age_sec']) < 5.0
    finally:
        rig.close()


def test_bad_frames_are_counted_logged_and_survived(ros_context, data_dir):
    rig = Rig(ros_context, [Parameter('diagnostic_updater.period', value=0.2)])
    clock = rig.client.get_clock()
    try:
        pixels = np.zeros((48, 64, 3), dtype=np.uint8)
        bad = [
            _image(pixels, 'yuv422', 'bad-encoding', clock),
            _image(pixels, 'bgr8', 'bad-step', clock, step=100),
            _image(pixels, 'bgr8', 'truncated', clock, data=bytes(64 * 3 * 47)),
            _image(pixels[:0], 'bgr8', 'empty', clock, step=0, data=b''),
        ]
        for number, msg in enumerate(bad, start=1):
            # One at a time: the detector keeps only the newest frame.
            def rejected(n=number):
                return int(rig.last_values().get('frames_rejected', 0)) >= n
            for _ in range(3):
                rig.pub.publish(msg)
                if rig.spin_until(rejected, 8.0):
                    break
            assert rejected(), (msg.header.frame_id, rig.last_values())
        assert rig.spin_until(lambda: any('unsupported image encoding' in m.msg
                                          for m in rig.logs), 5.0)
        log = next(m for m in rig.logs if 'unsupported image encoding' in m.msg)
        assert log.level == Log.ERROR and 'yuv422' in log.msg
        assert rig.statuses[-1].level in (b'\x01', b'\x02')
        bgr = cv2.imread(os.path.join(data_dir, 'thumb_up.jpg'))
        assert rig.detect(bgr, 'good-after-bad')[0] == 1
        assert rig.spin_until(lambda: rig.last_values().get('frames_processed') == '1', 5.0)
        assert rig.last_values()['frames_rejected'] == '4'
        assert 'expected step' in rig.last_values()['last_error'] or \
            'empty' in rig.last_values()['last_error']
    finally:
        rig.close()


def test_a_killed_mediapipe_process_is_restarted(ros_context, data_dir):
    rig = Rig(ros_context, [Parameter('diagnostic_updater.period', value=0.2)])
    try:
        bgr = cv2.imread(os.path.join(data_dir, 'thumb_up.jpg'))
        assert rig.detect(bgr, 'before-kill')[0] == 1
        pid = rig.detector.detector_pid
        assert pid is not None and pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        # The frame that meets the dead process fails; later ones reach a new process.
        assert rig.detect(bgr, 'after-kill', attempts=20, timeout=2.0)[0] == 1
        assert rig.detector.detector_pid not in (None, pid)
        assert rig.spin_until(lambda: rig.last_values().get('detector_restarts') == '1', 5.0)
        assert int(rig.last_values()['frames_failed']) >= 1
        assert 'died' in rig.last_values()['last_error']
        assert any('restarting MediaPipe' in m.msg for m in rig.logs)
    finally:
        rig.close()


def test_only_the_newest_frame_is_processed(ros_context, data_dir):
    overrides = [Parameter('static_image_mode', value=True),
                 Parameter('diagnostic_updater.period', value=0.2)]
    rig = Rig(ros_context, overrides)
    try:
        bgr = cv2.imread(os.path.join(data_dir, 'piano_duet_4hands.jpg'))
        clock = rig.client.get_clock()
        burst = 20
        # Each frame reaches the node's callback (the DDS reader's depth 1 cannot drop
        # it), far faster than MediaPipe finishes one, so the mailbox must replace.
        for i in range(burst):
            for _ in range(3):
                rig.pub.publish(_image(bgr, 'bgr8', f'burst-{i:02d}', clock))
                if rig.spin_until(lambda n=i + 1: rig.detector.stats.received >= n, 5.0):
                    break
            assert rig.detector.stats.received == i + 1
        last = f'burst-{burst - 1:02d}'
        assert rig.spin_until(lambda: any(c.header.frame_id == last for c in rig.clouds), 30.0)

        def settled():
            values = rig.last_values()
            return int(values.get('frames_processed', 0)) + int(
                values.get('frames_skipped', 0)) == burst
        assert rig.spin_until(settled, 5.0), rig.last_values()
        ids = [c.header.frame_id for c in rig.clouds]
        # Nothing was queued behind the newest frame, and no frame overtook another.
        assert ids[-1] == last and ids == sorted(ids)
        assert len(ids) == int(rig.last_values()['frames_processed']) < burst, ids
        assert int(rig.last_values()['frames_skipped']) > 0
    finally:
        rig.close()


def test_a_hung_mediapipe_process_is_reported_as_error(ros_context, data_dir):
    overrides = [Parameter('stale_after_sec', value=1.0),
                 Parameter('diagnostic_updater.period', value=0.2)]
    rig = Rig(ros_context, overrides)
    pid = None
    try:
        bgr = cv2.imread(os.path.join(data_dir, 'thumb_up.jpg'))
        assert rig.detect(bgr, 'before-stop')[0] == 1
        pid = rig.detector.detector_pid
        os.kill(pid, signal.SIGSTOP)
        clock = rig.client.get_clock()
        deadline = time.monotonic() + 8.0  # the node gives up on the child after 10 s

        def hung():
            rig.pub.publish(_image(bgr, 'bgr8', 'while-stopped', clock))
            status = rig.statuses[-1] if rig.statuses else None
            return status is not None and status.level == b'\x02' and \
                'none processed' in status.message
        while not hung() and time.monotonic() < deadline:
            rig.spin_until(lambda: False, 0.2)
        assert hung(), (rig.statuses[-1].message, rig.last_values())
        assert rig.detector.detector_pid == pid  # reported before any restart
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        rig.close()
