"""Benchmark the image recorder: detector FPS with recording off / thread / process / gstreamer.

Models ``pianist-bringup``, where the detector and the recorder share one process: a
MediaPipe Hands loop (pianist_ros.detection.detector.HandDetector, as the detector
node runs it) over hands_clip.mp4 frames offers EVERY frame to the recorder. Printed:
detector FPS per recorder mode and its ratio to "off" measured in the same run (off
is measured before and after the others and averaged), frames written / dropped,
then each backend's encoder throughput (frames/s, fed as fast as it accepts them),
and the JPEG codec comparison behind the process backend's default (simplejpeg vs
OpenCV). Results also go to bench/results/bench_recorder.json.

Run alone: ``.venv/bin/python bench/bench_recorder.py [--quick]``.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'test'))
import data_location  # noqa: E402  (test/data_location.py)

from pianist_ros.detection.config import DetectorConfig  # noqa: E402
from pianist_ros.detection.detector import HandDetector  # noqa: E402
from pianist_ros.recorder.backends import Job  # noqa: E402
from pianist_ros.recorder.backends import make_backend  # noqa: E402
from pianist_ros.recorder.config import RecorderConfig  # noqa: E402
from pianist_ros.recorder.recorder import Recorder  # noqa: E402

SIZES = ((640, 480), (1280, 720))
MODES = ('thread', 'process', 'gstreamer')


def _data_dir() -> str:
    path = data_location.hands_data(REPO)
    if not path:
        raise SystemExit('hands_clip.mp4 not found; set PIANIST_TEST_DATA')
    return path


def load_frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Return ``count`` clip frames at ``size`` (the clip loops if it is shorter)."""
    cap = cv2.VideoCapture(os.path.join(_data_dir(), 'hands_clip.mp4'))
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(cv2.resize(frame, size) if frame.shape[1::-1] != size else frame)
    cap.release()
    return frames


def _config(mode: str, out: str) -> RecorderConfig:
    return RecorderConfig.from_values({
        'backend': mode, 'output_dir': out, 'trigger_every_n': 1, 'min_free_bytes': 0,
        'max_total_bytes': 300_000_000, 'sidecar': True, 'queue_depth': 8})


def detector_runs(frames: list, out: str, rounds: int) -> dict:
    """Run MediaPipe over ``frames`` once per mode per round, modes interleaved.

    One detector and one started recorder per backend live through all rounds (an
    idle recorder costs nothing), and the mode order rotates every round, so a
    load spike from elsewhere on the machine spreads over every mode.
    """
    detector = HandDetector(DetectorConfig())
    recorders = {}
    elapsed = {mode: 0.0 for mode in ('off',) + MODES}
    try:
        for mode in MODES:
            recorders[mode] = Recorder(_config(mode, os.path.join(out, mode)))
            recorders[mode].start()
            if hasattr(recorders[mode].backend, 'wait_ready'):
                recorders[mode].backend.wait_ready(30.0)
        for frame in frames[:5]:  # warm-up: graph init, first pipeline build, ring
            detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            for recorder in recorders.values():
                recorder.offer(frame, 'bgr8', time.time_ns())
        order = ['off', *MODES]
        for round_index in range(rounds):
            shift = round_index % len(order)
            for mode in order[shift:] + order[:shift]:
                recorder = recorders.get(mode)
                start = time.perf_counter()
                for frame in frames:
                    detector.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                    if recorder is not None:
                        recorder.offer(frame, 'bgr8', time.time_ns())
                elapsed[mode] += time.perf_counter() - start
                if recorder is not None:  # let it drain so the next mode starts idle
                    deadline = time.monotonic() + 10.0
                    while time.monotonic() < deadline and (
                            recorder.snapshot()['queue_depth'] or recorder.backend.in_flight()):
                        time.sleep(0.01)
    finally:
        detector.close()
        snaps = {mode: rec.close(5.0) for mode, rec in recorders.items()}
    rows = {}
    for mode, seconds in elapsed.items():
        snap = snaps.get(mode, {})
        rows[mode] = {'fps': rounds * len(frames) / seconds,
                      'written': snap.get('frames_written', 0),
                      'dropped': snap.get('frames_dropped', 0),
                      'p50_ms': snap.get('encode_write_ms_p50', 0.0),
                      'p99_ms': snap.get('encode_write_ms_p99', 0.0)}
    for row in rows.values():
        row['ratio'] = row['fps'] / rows['off']['fps']
    return rows


def encoder_throughput(frames: list, mode: str, out: str) -> float:
    """Return frames/s one backend sustains when fed as fast as it accepts frames."""
    cfg = _config(mode, out)
    backend = make_backend(cfg)
    done = []
    backend.start(done.append)
    if hasattr(backend, 'wait_ready'):
        backend.wait_ready(30.0)
    session = os.path.join(out, f'throughput_{mode}')
    os.makedirs(session, exist_ok=True)
    try:
        backend.submit(Job(0, frames[0], 'bgr8', os.path.join(session, 'warm.jpg'), None), 30.0)
        while len(done) < 1:
            time.sleep(0.001)
        start = time.perf_counter()
        for i, frame in enumerate(frames, 1):
            while not backend.submit(Job(i, frame, 'bgr8',
                                         os.path.join(session, f'{i:06d}.jpg'), None), 1.0):
                pass
        while len(done) < len(frames) + 1:
            time.sleep(0.001)
        elapsed = time.perf_counter() - start
    finally:
        backend.close(5.0)
    return len(frames) / elapsed


def codec_ms(frame: np.ndarray, repeat: int) -> dict:
    """Return best-of milliseconds per JPEG encode for simplejpeg and OpenCV (q=90, 4:2:0)."""
    import simplejpeg
    out = {}
    for name, fn in (
            ('simplejpeg', lambda: simplejpeg.encode_jpeg(frame, 90, colorspace='BGR',
                                                          colorsubsampling='420')),
            ('opencv', lambda: cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY, 90]))):
        fn()
        best = float('inf')
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            best = min(best, (time.perf_counter() - start) / repeat)
        out[name] = best * 1000.0
    return out


def main() -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='fewer frames per measurement')
    parser.add_argument('--frames', type=int, default=100, help='frames per mode and round')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved rounds')
    args = parser.parse_args()
    count = 40 if args.quick else args.frames
    rounds = 3 if args.quick else args.rounds
    out = tempfile.mkdtemp(prefix='bench-recorder-')
    result = {'quick': args.quick, 'frames': count, 'rounds': rounds, 'cpus': os.cpu_count(),
              'sizes': {}}
    try:
        for size in SIZES:
            label = f'{size[0]}x{size[1]}'
            frames = load_frames(count, size)
            rows = detector_runs(frames, out, rounds)
            throughput = {mode: encoder_throughput(frames[:min(count, 100)], mode, out)
                          for mode in MODES}
            codecs = codec_ms(frames[0], 10 if args.quick else 30)
            result['sizes'][label] = {'detector': rows, 'throughput_fps': throughput,
                                      'codec_ms': codecs}
            _print(label, count, rounds, rows, throughput, codecs)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out, exist_ok=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    _write_result(result)
    return 0


def _print(label, count, rounds, rows, throughput, codecs) -> None:
    print(f'\n{label}: detector FPS with every frame recorded ({rounds} interleaved rounds '
          f'of {count} frames per mode)')
    print(f'{"recorder":<10} {"fps":>7} {"ratio":>6} {"written":>8} {"dropped":>8} '
          f'{"p50 ms":>7} {"p99 ms":>7} {"encoder fps":>12}')
    for mode, row in rows.items():
        enc = f'{throughput[mode]:12.1f}' if mode in throughput else f'{"-":>12}'
        print(f'{mode:<10} {row["fps"]:7.1f} {row["ratio"]:6.2f} {row["written"]:8d} '
              f'{row["dropped"]:8d} {row.get("p50_ms", 0.0):7.1f} {row.get("p99_ms", 0.0):7.1f}'
              f' {enc}')
    ratio = codecs['simplejpeg'] / codecs['opencv']
    print(f'JPEG encode, one core, q=90 4:2:0: simplejpeg {codecs["simplejpeg"]:.2f} ms, '
          f'opencv {codecs["opencv"]:.2f} ms (simplejpeg/opencv {ratio:.2f})')


def _write_result(result: dict) -> None:
    out_dir = os.path.join(HERE, 'results')
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, '.bench_recorder.json.tmp')
    with open(tmp, 'w', encoding='utf-8') as handle:
        json.dump(result, handle, indent=2)
    os.replace(tmp, os.path.join(out_dir, 'bench_recorder.json'))


if __name__ == '__main__':
    sys.exit(main())
