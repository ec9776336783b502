"""Detector throughput through the nodes vs a bare MediaPipe loop, in the same run.

1. Baseline: decode ``hands_clip.mp4`` (640x480) into memory and run the same
   :class:`HandDetector` (node defaults: tracking mode, max 2 hands, model 1) in a
   plain loop over the frames; frames per second.
2. Nodes: ``CameraNode`` (file source, looping, paced faster than the baseline so
   the detector is never starved) -> DDS -> ``HandDetectorNode`` in one process,
   once on a SingleThreadedExecutor (what pianist-bringup uses) and once on a
   MultiThreadedExecutor (for comparison); frames the detector processed per second, and
   latency from the capture stamp to the landmarks publish (the node's own
   measurement) and to their receipt by a listener.

Prints both FPS figures and their ratio (goal >= 0.95). ``--publisher`` replaces the
camera with a small in-memory publisher node with the same QoS. Results also go to
bench/results/bench_detector.json. Run alone:
``.venv/bin/python bench/bench_detector.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# Loopback-only DDS on a private domain, set before rclpy is imported.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(101, 200)))
# Import the working tree's package even where the editable install is stale.
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'test'))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import data_location  # noqa: E402  (test/data_location.py)

from pianist_ros.detection import imaging  # noqa: E402
from pianist_ros.detection.config import DetectorConfig  # noqa: E402
from pianist_ros.detection.detector import HandDetector  # noqa: E402


def _data_dir() -> str:
    path = data_location.hands_data(REPO)
    if not path:
        sys.exit('bench_detector: hands_clip.mp4 not found; set PIANIST_TEST_DATA')
    return path


def load_frames(path: str) -> list[np.ndarray]:
    """Decode every frame of the clip (BGR)."""
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        sys.exit(f'bench_detector: no frames decoded from {path}')
    return frames


def bare_loop(frames: list[np.ndarray], config: DetectorConfig, duration: float) -> dict:
    """Run the detector over the frames (looping) for ``duration`` seconds."""
    with HandDetector(config) as detector:
        detector.detect(imaging.to_rgb('bgr8', 640, 480, 640 * 3, frames[0]))  # warm-up
        count, hands = 0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < duration or count < len(frames):
            bgr = frames[count % len(frames)]
            rgb = imaging.to_rgb('bgr8', bgr.shape[1], bgr.shape[0], bgr.strides[0], bgr)
            hands += len(detector.detect(rgb))
            count += 1
        elapsed = time.perf_counter() - start
    return {'frames': count, 'seconds': elapsed, 'fps': count / elapsed,
            'mean_hands': hands / count}


class _FramePublisher:
    """A stand-in camera: publishes in-memory frames at a fixed rate from a thread."""

    def __init__(self, node, frames, fps):
        from sensor_msgs.msg import Image

        from pianist_ros.common import topics
        self._node, self._frames, self._period = node, frames, 1.0 / fps
        self._pub = node.create_publisher(Image, topics.IMAGE_RAW, topics.SENSOR_QOS)
        self._image_cls = Image
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        index, next_time = 0, time.monotonic()
        while not self._stop.is_set():
            frame = self._frames[index % len(self._frames)]
            msg = self._image_cls()
            msg.header.stamp = self._node.get_clock().now().to_msg()
            msg.header.frame_id = 'camera'
            msg.height, msg.width = frame.shape[:2]
            msg.encoding, msg.step = 'bgr8', frame.shape[1] * 3
            msg.data = frame.tobytes()
            self._pub.publish(msg)
            index += 1
            next_time += self._period
            self._stop.wait(max(0.0, next_time - time.monotonic()))

    def stop(self):
        self._stop.set()
        self._thread.join(5.0)


def node_pipeline(clip: str, frames, config: DetectorConfig, source_fps: float,
                  duration: float, use_publisher: bool, executor_kind: str = 'single') -> dict:
    """Run camera (or publisher) -> DDS -> detector; measure after a warm-up."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.time import Time
    from sensor_msgs.msg import PointCloud2

    from pianist_ros.common import topics
    from pianist_ros.detection.node import HandDetectorNode

    context = rclpy.Context()
    rclpy.init(context=context)
    nodes, publisher, executor, spin_thread = [], None, None, None
    latencies, lock = [], threading.Lock()
    measuring = threading.Event()
    try:
        overrides = [Parameter(name, value=getattr(config, name))
                     for name in ('max_num_hands', 'model_complexity', 'static_image_mode')]
        detector = HandDetectorNode(context=context, parameter_overrides=overrides)
        listener = Node('bench_listener', context=context)
        clock = listener.get_clock()

        def on_landmarks(msg):
            if measuring.is_set():
                age = (clock.now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
                with lock:
                    latencies.append(age)

        listener.create_subscription(PointCloud2, topics.HANDS_LANDMARKS, on_landmarks,
                                     topics.RESULT_QOS)
        nodes += [detector, listener]
        camera = None
        if use_publisher:
            source_node = Node('bench_frame_publisher', context=context)
            nodes.append(source_node)
        else:
            from pianist_ros.camera.node import CameraNode
            camera = CameraNode(context=context, parameter_overrides=[
                Parameter('source', value=clip), Parameter('loop', value=True),
                Parameter('use_file_fps', value=False), Parameter('fps', value=source_fps)])
            nodes.append(camera)
        if executor_kind == 'multi':
            executor = MultiThreadedExecutor(num_threads=4, context=context)
        else:
            executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            executor.add_node(node)
        spin_thread = threading.Thread(target=executor.spin, daemon=True)
        spin_thread.start()
        if use_publisher:
            publisher = _FramePublisher(source_node, frames, source_fps)
        else:
            from rclpy.lifecycle import TransitionCallbackReturn
            for trigger in (camera.trigger_configure, camera.trigger_activate):
                if trigger() != TransitionCallbackReturn.SUCCESS:
                    raise RuntimeError(f'camera {trigger.__name__} failed')
        stats = detector.stats
        deadline = time.monotonic() + 30.0
        while stats.processed < 10:
            if time.monotonic() > deadline:
                raise RuntimeError('the detector processed no frames within 30 s')
            time.sleep(0.05)
        time.sleep(1.0)  # let tracking and DDS settle before measuring
        start_processed, start_received = stats.processed, stats.received
        stats.reset_latency()
        start = time.perf_counter()
        measuring.set()
        time.sleep(duration)
        measuring.clear()
        elapsed = time.perf_counter() - start
        processed = stats.processed - start_processed
        received = stats.received - start_received
        with lock:
            received_lat = np.array(latencies) if latencies else np.zeros(1)
        return {
            'source': 'publisher' if use_publisher else 'camera',
            'executor': executor_kind,
            'source_fps': source_fps,
            'seconds': elapsed,
            'frames_received': received,
            'frames_processed': processed,
            'fps': processed / elapsed,
            'latency_publish_ms_p50': stats.latency_ms(50),
            'latency_publish_ms_p99': stats.latency_ms(99),
            'latency_received_ms_p50': float(np.percentile(received_lat, 50)),
            'latency_received_ms_p99': float(np.percentile(received_lat, 99)),
        }
    finally:
        if publisher is not None:
            publisher.stop()
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)
        if spin_thread is not None:
            spin_thread.join(5.0)
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def _write_result(result: dict) -> None:
    out_dir = os.path.join(HERE, 'results')
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix='.tmp')
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2)
    os.replace(tmp, os.path.join(out_dir, 'bench_detector.json'))


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print FPS, ratio and latency."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='5 s per measurement')
    parser.add_argument('--duration', type=float, default=20.0,
                        help='seconds per measurement (default 20)')
    parser.add_argument('--publisher', action='store_true',
                        help='feed frames from an in-memory publisher node, not CameraNode')
    parser.add_argument('--executors', nargs='+', choices=('single', 'multi'),
                        default=['single', 'multi'],
                        help='executors to measure the nodes on (default: both; '
                             'pianist-bringup uses a SingleThreadedExecutor)')
    parser.add_argument('--source-factor', type=float, default=1.25,
                        help='source rate as a multiple of the baseline FPS (default 1.25)')
    args = parser.parse_args(argv)
    duration = 5.0 if args.quick else args.duration
    clip = os.path.join(_data_dir(), 'hands_clip.mp4')
    frames = load_frames(clip)
    config = DetectorConfig()
    print(f'detector bench: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]} '
          f'from {clip}; {config}; {duration:.0f} s per measurement', flush=True)
    bare = bare_loop(frames, config, duration)
    print(f'bare MediaPipe loop : {bare["fps"]:7.1f} fps ({bare["frames"]} frames, '
          f'{bare["mean_hands"]:.2f} hands/frame)', flush=True)
    source_fps = min(240.0, max(15.0, bare['fps'] * args.source_factor))
    results = {'bare': bare}
    for kind in args.executors:
        nodes = node_pipeline(clip, frames, config, source_fps, duration, args.publisher, kind)
        ratio = nodes['fps'] / bare['fps'] if bare['fps'] else 0.0
        nodes['ratio'] = ratio
        results[f'nodes_{kind}'] = nodes
        print(f'{nodes["source"]} -> DDS -> hand_detector ({kind}-threaded executor): '
              f'{nodes["fps"]:7.1f} fps ({nodes["frames_processed"]} of '
              f'{nodes["frames_received"]} received frames, source paced at '
              f'{source_fps:.1f} fps)')
        print(f'  ratio nodes / bare : {ratio:7.3f}  (goal >= 0.95)')
        print(f'  latency capture -> landmarks publish : p50 '
              f'{nodes["latency_publish_ms_p50"]:.1f} ms, p99 '
              f'{nodes["latency_publish_ms_p99"]:.1f} ms')
        print(f'  latency capture -> landmarks received: p50 '
              f'{nodes["latency_received_ms_p50"]:.1f} ms, p99 '
              f'{nodes["latency_received_ms_p99"]:.1f} ms', flush=True)
    results['quick'] = args.quick
    _write_result(results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
