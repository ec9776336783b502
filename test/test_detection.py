"""ROS-free tests of the detection area: encodings, MediaPipe on real images, packing."""

import dataclasses
import os

import cv2
import numpy as np
import pytest

from detection_support import match_by_x
from detection_support import mediapipe_hands
from detection_support import true_hands
from pianist_ros.detection import imaging
from pianist_ros.detection import packing
from pianist_ros.detection.annotate import draw_hands
from pianist_ros.detection.cli import check_complete
from pianist_ros.detection.config import DetectorConfig
from pianist_ros.detection.config import SCHEMA
from pianist_ros.detection.detector import anatomical_label
from pianist_ros.detection.detector import Hand
from pianist_ros.detection.detector import HAND_CONNECTIONS
from pianist_ros.detection.detector import HandDetector
from pianist_ros.detection.detector import Landmark
from pianist_ros.detection.errors import DetectionError
from pianist_ros.detection.errors import DetectorError
from pianist_ros.detection.errors import FrameError
from pianist_ros.detection.errors import MalformedFrameError
from pianist_ros.detection.errors import UnsupportedEncodingError
from pianist_ros.detection.stats import DetectorStats
from support import image_rows

ENCODINGS = ('bgr8', 'rgb8', 'bgra8', 'rgba8', 'mono8')


def _rgb(height=6, width=7, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _expected(rgb, encoding):
    """What to_rgb must return: the RGB input, or its gray value replicated for mono8."""
    if encoding == 'mono8':
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return rgb


def _raw(pixels, pad=0):
    """Lay out ``pixels`` row by row with ``pad`` junk bytes after each row."""
    height = pixels.shape[0]
    rows = pixels.reshape(height, -1)
    junk = np.full((height, pad), 0xAB, dtype=np.uint8)
    data = np.hstack([rows, junk]).tobytes()
    return rows.shape[1] + pad, data


# ---- encodings ---------------------------------------------------------------------

def test_accepted_encodings_are_exactly_the_tested_ones():
    assert set(imaging.ACCEPTED_ENCODINGS) == set(ENCODINGS)


@pytest.mark.parametrize('encoding', ENCODINGS)
@pytest.mark.parametrize('pad', [0, 5])
def test_every_accepted_encoding_round_trips_by_hand(encoding, pad):
    rgb = _rgb()
    pixels = imaging.from_rgb(rgb, encoding)
    assert pixels.shape[2:] == (() if encoding == 'mono8' else (imaging.channels(encoding),))
    step, data = _raw(pixels, pad)
    out = imaging.to_rgb(encoding, 7, 6, step, data)
    assert out.shape == (6, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, _expected(rgb, encoding))


def test_channel_order_is_respected():
    # One pure-red pixel laid out by hand in each encoding.
    red = {'bgr8': [0, 0, 255], 'rgb8': [255, 0, 0], 'bgra8': [0, 0, 255, 9],
           'rgba8': [255, 0, 0, 9]}
    for encoding, raw in red.items():
        out = imaging.to_rgb(encoding, 1, 1, len(raw), bytes(raw))
        assert out.tolist() == [[[255, 0, 0]]], encoding
    assert imaging.to_rgb('mono8', 1, 1, 1, bytes([77])).tolist() == [[[77, 77, 77]]]


def test_result_does_not_alias_the_input_buffer():
    data = bytearray(_rgb(2, 2).tobytes())
    out = imaging.to_rgb('rgb8', 2, 2, 6, data)
    data[:] = bytes(len(data))
    assert out.any()


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', 'bgr16', 'rgb16', 'yuv422',
                                      '8UC3', 'BGR8', 'bayer_rggb8', '', 'jpeg'])
def test_other_encodings_are_rejected(encoding):
    with pytest.raises(UnsupportedEncodingError, match='unsupported image encoding'):
        imaging.to_rgb(encoding, 2, 2, 12, bytes(24))


@pytest.mark.parametrize('args, match', [
    (('bgr8', 4, 2, 11, bytes(22)), 'step 11 is smaller'),
    (('bgr8', 4, 2, 12, bytes(23)), 'expected step'),
    (('bgr8', 4, 2, 12, bytes(25)), 'expected step'),
    (('rgba8', 4, 2, 16, bytes(16)), 'expected step'),
    (('bgr8', 4, 2, 12, b''), 'empty image data'),
    (('mono8', 0, 2, 0, b''), 'empty frame'),
    (('mono8', 3, 0, 3, b''), 'empty frame'),
    (('mono8', 100000, 100000, 100000, b'x'), 'exceeds the limit'),
    (('mono8', 2, 1, 2, [1, 2]), 'not a byte buffer'),
])
def test_malformed_frames_raise_the_typed_error(args, match):
    with pytest.raises(MalformedFrameError, match=match) as info:
        imaging.to_rgb(*args)
    assert isinstance(info.value, FrameError) and isinstance(info.value, ValueError)


# ---- config --------------------------------------------------------------------------

def test_config_defaults_match_the_schema():
    config = DetectorConfig.from_values({})
    for param in SCHEMA:
        assert getattr(config, param.field) == param.default
    assert config == DetectorConfig()


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match='max_num_hands must be <= 8'):
        DetectorConfig.from_values({'max_num_hands': 9})
    with pytest.raises(ValueError, match='unknown'):
        DetectorConfig.from_values({'max_hands': 2})
    assert DetectorConfig.from_values({'min_detection_confidence': 1}).min_detection_confidence \
        == 1.0


# ---- MediaPipe on the real images --------------------------------------------------

@pytest.fixture(scope='module')
def static_results(data_dir, manifest):
    """Run both handedness settings (static, 4 hands, complexity 1) on every image."""
    results = {}
    for mirrored in (False, True):
        config = DetectorConfig(static_image_mode=True, max_num_hands=4, model_complexity=1,
                                mirrored_input=mirrored)
        with HandDetector(config) as detector:
            for row in image_rows(manifest):
                bgr = cv2.imread(os.path.join(data_dir, row['file']))
                rgb = imaging.to_rgb('bgr8', bgr.shape[1], bgr.shape[0], bgr.strides[0], bgr)
                results[row['file'], mirrored] = detector.detect(rgb)
    return results


def test_counts_match_the_manifest_for_every_image(static_results, manifest):
    rows = image_rows(manifest)
    assert len(rows) >= 14
    for row in rows:
        hands = static_results[row['file'], False]
        assert len(hands) == int(row['hands_detected']), row['file']
        for hand in hands:
            assert len(hand.landmarks) == 21
            assert all(-0.5 < p.x < 1.5 and -0.5 < p.y < 1.5 for p in hand.landmarks)
            assert 0.5 <= hand.score <= 1.0


def test_unmirrored_labels_name_the_anatomical_hand(static_results, manifest):
    checked, listed = 0, 0
    for row in image_rows(manifest):
        expected = true_hands(row)
        listed += len(expected)
        if not expected:
            continue
        hands = static_results[row['file'], False]
        for truth, got, _ in match_by_x(expected, [(h.handedness, h.center_x) for h in hands]):
            assert got == truth, row['file']
            checked += 1
    assert checked == listed >= 15


def test_mirrored_labels_match_mediapipe(static_results, manifest):
    checked, listed = 0, 0
    for row in image_rows(manifest):
        expected = mediapipe_hands(row)
        listed += len(expected)
        hands = static_results[row['file'], True]
        for truth, got, _ in match_by_x(expected, [(h.handedness, h.center_x) for h in hands]):
            assert got == truth, row['file']
            checked += 1
        # The other setting must name the opposite hand, frame for frame.
        plain = static_results[row['file'], False]
        assert [h.handedness for h in plain] == [anatomical_label(h.handedness, False)
                                                 for h in hands]
    assert checked == listed >= 20


def test_anatomical_label():
    assert anatomical_label('Left', mirrored_input=False) == 'Right'
    assert anatomical_label('Right', mirrored_input=False) == 'Left'
    assert anatomical_label('Left', mirrored_input=True) == 'Left'
    assert anatomical_label('Bogus', mirrored_input=True) == 'Unknown'


def test_detector_rejects_bad_input_and_use_after_close():
    detector = HandDetector(DetectorConfig(static_image_mode=True))
    try:
        with pytest.raises(ValueError):
            detector.detect(np.zeros((4, 4), dtype=np.uint8))
        with pytest.raises(ValueError):
            detector.detect(np.zeros((4, 4, 3), dtype=np.float32))
        assert detector.detect(np.zeros((48, 64, 3), dtype=np.uint8)) == []
    finally:
        detector.close()
    detector.close()
    with pytest.raises(DetectorError, match='closed'):
        detector.detect(np.zeros((48, 64, 3), dtype=np.uint8))


def test_hand_connections_equal_mediapipe():
    from mediapipe.python.solutions.hands import HAND_CONNECTIONS as MP_CONNECTIONS
    assert set(HAND_CONNECTIONS) == set(MP_CONNECTIONS)
    assert len(HAND_CONNECTIONS) == len(MP_CONNECTIONS)


# ---- packing, markers, annotation ----------------------------------------------------

def _hand(index, label='Left', score=0.9, shift=0.0):
    points = tuple(Landmark(0.1 + 0.01 * i + shift, 0.2 + 0.02 * i, -0.001 * i)
                   for i in range(21))
    return Hand(index=index, handedness=label, score=score, landmarks=points,
                mediapipe_label='Right' if label == 'Left' else 'Left')


def test_pack_layout_and_round_trip():
    hands = [_hand(0, 'Left', 0.91), _hand(1, 'Right', 0.75, shift=0.3)]
    points = packing.pack(hands)
    assert packing.POINT_DTYPE.itemsize == packing.POINT_STEP == 20
    assert points.size == 42
    raw = points.tobytes()
    assert len(raw) == 42 * 20
    # Read one field straight from the bytes at its documented offset.
    assert np.frombuffer(raw[20 * 22 + 16:20 * 22 + 20], '<f4')[0] == pytest.approx(0.75)
    assert raw[20 * 22 + 12] == 1 and raw[20 * 22 + 13] == 1 and raw[20 * 22 + 14] == 1
    assert points['handedness'][0] == 0 and points['landmark'][20] == 20
    back = packing.unpack(raw)
    assert [(h.index, h.handedness) for h in back] == [(0, 'Left'), (1, 'Right')]
    for got, want in zip(back, hands):
        assert got.score == pytest.approx(want.score)
        np.testing.assert_allclose([(p.x, p.y, p.z) for p in got.landmarks],
                                   [(p.x, p.y, p.z) for p in want.landmarks], rtol=1e-6)
    assert packing.pack([]).size == 0 and packing.unpack(b'') == []


def test_pack_and_unpack_refuse_bad_input():
    broken = Hand(index=0, handedness='Left', score=1.0, landmarks=(Landmark(0, 0, 0),),
                  mediapipe_label='Right')
    with pytest.raises(ValueError):
        packing.pack([broken])
    with pytest.raises(packing.DetectionError):
        packing.unpack(bytes(21))
    with pytest.raises(packing.DetectionError):
        packing.unpack(packing.pack([_hand(0)]).tobytes()[:20 * 20])
    with pytest.raises(packing.DetectionError):
        packing.unpack(bytes(40), point_step=16)


def test_marker_geometry_keeps_proportions():
    (pts, segments), = packing.marker_geometry([_hand(0)], width=640, height=480)
    assert pts.shape == (21, 3) and segments.shape == (2 * len(HAND_CONNECTIONS), 3)
    assert pts[0, 0] == pytest.approx(0.1 * 640 / 480) and pts[0, 1] == pytest.approx(0.2)
    np.testing.assert_allclose(segments[0], pts[HAND_CONNECTIONS[0][0]])


def test_draw_hands_changes_only_a_copy():
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    drawn = draw_hands(image, [_hand(0)])
    assert not image.any() and drawn.any()
    with pytest.raises(ValueError):
        draw_hands(np.zeros((4, 4), dtype=np.uint8), [])


# ---- stats and health ----------------------------------------------------------------

def test_stats_levels_follow_what_happens():
    stats = DetectorStats()
    report = stats.report(now=0.0, stale_after_sec=3.0)
    assert report.level == 'WARN' and report.values['last_frame_age_sec'] == '-1.00'
    stats.on_received(10.0, replaced=False)
    stats.on_rejected('unsupported image encoding')
    report = stats.report(now=10.1, stale_after_sec=3.0)
    assert report.level == 'ERROR' and 'rejected' in report.message
    for i in range(5):
        stats.on_received(11.0 + i * 0.1, replaced=i % 2 == 1)
        stats.on_processed(11.0 + i * 0.1, hands=2, latency_ms=20.0 + i)
    report = stats.report(now=11.5, stale_after_sec=3.0)
    assert report.level == 'OK', report.message
    values = report.values
    assert values['frames_processed'] == '5' and values['frames_rejected'] == '1'
    assert values['frames_skipped'] == '2' and values['hands'] == '2'
    # 5 events over 0.5 s of window: 4 intervals.
    assert float(values['fps']) == pytest.approx(8.0, rel=0.01)
    assert float(values['latency_ms_p50']) == pytest.approx(22.0)
    expected_keys = {'fps', 'latency_ms_p50', 'latency_ms_p99', 'hands', 'frames_processed',
                     'frames_rejected', 'last_frame_age_sec'}
    assert expected_keys <= set(values)
    stats.on_received(12.0, replaced=False)
    stats.on_processed(12.0, 1, None)
    stats.on_rejected('bad step')
    assert stats.report(now=12.1, stale_after_sec=3.0).level == 'WARN'
    assert stats.report(now=20.0, stale_after_sec=3.0).message.startswith('no frame for')


def test_stats_report_error_while_frames_arrive_but_none_is_processed():
    # The adversarial case: MediaPipe hangs (child SIGSTOPped), frames keep arriving.
    stats = DetectorStats()
    stats.on_detector_ready(0.0)
    stats.on_received(1.0, replaced=False)
    stats.on_processed(1.0, hands=1, latency_ms=None)
    assert stats.report(now=1.1, stale_after_sec=3.0).level == 'OK'
    for i in range(40):  # 10 fps from t=2 s on, none answered
        stats.on_received(2.0 + i * 0.1, replaced=i > 0)
    assert stats.report(now=4.9, stale_after_sec=3.0).level == 'OK'  # 2.9 s: not yet
    report = stats.report(now=5.2, stale_after_sec=3.0)
    assert report.level == 'ERROR', report.message
    assert report.message == 'frames arriving but none processed for 3.2 s'
    # Frames stop as well: the stale-input warning takes over.
    assert stats.report(now=9.5, stale_after_sec=3.0).level == 'WARN'
    # One answered frame (even a failed one) ends the hang; the next is fresh.
    stats.on_failed('detector process did not answer within 10 s')
    stats.on_received(10.0, replaced=False)
    stats.on_processed(10.0, hands=1, latency_ms=None)
    assert stats.report(now=10.1, stale_after_sec=3.0).level == 'WARN'  # the failure
    stats.on_received(13.5, replaced=False)
    assert stats.report(now=13.6, stale_after_sec=3.0).level == 'OK'


def test_stats_a_slow_start_or_a_long_pause_is_not_a_hang():
    stats = DetectorStats()
    # Frames wait while MediaPipe starts (the node warns 'not running' meanwhile).
    for i in range(50):
        stats.on_received(i * 0.1, replaced=i > 0)
    assert stats.report(now=5.0, stale_after_sec=3.0).level == 'OK'
    stats.on_detector_ready(5.0)
    stats.on_received(5.1, replaced=True)
    assert stats.report(now=5.5, stale_after_sec=3.0).level == 'OK'
    assert stats.report(now=8.2, stale_after_sec=3.0).level == 'WARN'  # no frame 3.1 s
    stats.on_received(8.2, replaced=True)
    assert stats.report(now=8.3, stale_after_sec=3.0).level == 'ERROR'  # ready 3.3 s
    stats.on_processed(8.4, hands=0, latency_ms=None)
    # A rejected frame long ago does not make the next frame look hung.
    stats.on_received(9.0, replaced=False)
    stats.on_rejected('bad step')
    stats.on_received(100.0, replaced=False)
    assert stats.report(now=100.1, stale_after_sec=3.0).level == 'WARN'  # the rejection
    assert stats.report(now=100.2, stale_after_sec=3.0).level == 'OK'
    # MediaPipe down (crashed, restarting): not a hang either.
    stats.on_detector_down()
    stats.on_received(104.0, replaced=True)
    assert stats.report(now=104.1, stale_after_sec=3.0).level != 'ERROR'


# ---- MediaPipe in a child process ---------------------------------------------------

def test_process_detector_matches_in_process_and_reports_a_crash(data_dir):
    import signal
    from pianist_ros.detection.isolated import DetectorCrashedError
    from pianist_ros.detection.isolated import ProcessHandDetector
    config = DetectorConfig(static_image_mode=True, max_num_hands=4)
    bgr = cv2.imread(os.path.join(data_dir, 'piano_duet_4hands.jpg'))
    small = cv2.imread(os.path.join(data_dir, 'thumb_up.jpg'))
    with HandDetector(config) as local:
        want = [local.detect(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)) for img in (small, bgr)]
    detector = ProcessHandDetector(config)
    try:
        pid = detector.pid
        assert detector.alive and pid != os.getpid()
        # A small frame, then a larger one (the shared buffer grows), then small again.
        for img, expected in ((small, want[0]), (bgr, want[1]), (small, want[0])):
            got = detector.detect(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            assert [(h.handedness, h.index) for h in got] == \
                [(h.handedness, h.index) for h in expected]
            np.testing.assert_allclose([[p.x, p.y] for h in got for p in h.landmarks],
                                       [[p.x, p.y] for h in expected for p in h.landmarks],
                                       atol=1e-5)
        with pytest.raises(ValueError):
            detector.detect(np.zeros((4, 4), dtype=np.uint8))
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(DetectorCrashedError, match='died'):
            detector.detect(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        assert not detector.alive
    finally:
        detector.close()
    detector.close()
    with pytest.raises(DetectorError, match='closed'):
        detector.detect(np.zeros((48, 64, 3), dtype=np.uint8))


def test_process_detector_survives_mediapipe_aborting():
    from pianist_ros.detection.isolated import DetectorCrashedError
    from pianist_ros.detection.isolated import ProcessHandDetector
    # MediaPipe aborts its whole process (a fatal CHECK) on an unknown model; in a child
    # process that is an error for the caller, not the end of the node.
    config = dataclasses.replace(DetectorConfig(), model_complexity=7)
    with pytest.raises(DetectorCrashedError, match='died while starting'):
        ProcessHandDetector(config)


def test_rviz_config_shows_our_topics_in_the_camera_frame():
    import yaml

    from pianist_ros.camera.config import SCHEMA as CAMERA_SCHEMA
    from support import REPO
    with open(os.path.join(REPO, 'config', 'pianist.rviz'), encoding='utf-8') as handle:
        rviz = yaml.safe_load(handle)
    manager = rviz['Visualization Manager']
    frame_id = next(p.default for p in CAMERA_SCHEMA if p.name == 'frame_id')
    assert manager['Global Options']['Fixed Frame'] == frame_id
    shown = {d['Topic']['Value']: d['Class'] for d in manager['Displays']}
    assert shown['hands/image_annotated'] == 'rviz_default_plugins/Image'
    assert shown['camera/image_raw'] == 'rviz_default_plugins/Image'
    assert shown['hands/markers'] == 'rviz_default_plugins/MarkerArray'
    assert shown['hands/landmarks'] == 'rviz_default_plugins/PointCloud2'


def test_check_complete_refuses_cut_jpeg_and_png():
    jpeg = cv2.imencode('.jpg', np.full((16, 16, 3), 200, np.uint8))[1].tobytes()
    png = cv2.imencode('.png', np.full((16, 16, 3), 200, np.uint8))[1].tobytes()
    check_complete('a.jpg', jpeg)
    check_complete('a.jpg', jpeg + b'\x00\x00\n')
    check_complete('a.png', png)
    check_complete('a.bmp', b'BM' + b'\x00' * 10)  # other formats are left to OpenCV
    for name, data in (('a.jpg', jpeg[:-2]), ('a.jpg', jpeg[:len(jpeg) // 2]),
                       ('a.png', png[:-12])):
        with pytest.raises(DetectionError, match=f'{name} is truncated'):
            check_complete(name, data)
