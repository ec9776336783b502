"""``pianist-detect``: run the node's detector code offline on images and videos.

Prints one JSON object per line: one per image (static mode) and one per video
frame (tracking mode, a fresh tracker per video). Engineers use it to check a
camera placement; tests and benchmarks use it to cross-check the node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterator, TextIO

import cv2
import numpy as np

from pianist_ros.common.video import truncation_error
from pianist_ros.detection import imaging
from pianist_ros.detection.config import DetectorConfig
from pianist_ros.detection.detector import HandDetector
from pianist_ros.detection.errors import DetectionError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
#: Refuse image files larger than this before decoding them (bytes).
MAX_IMAGE_FILE_BYTES = 200 * 1024 * 1024
_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_IEND = b'IEND\xaeB`\x82'


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog='pianist-detect',
        description='Detect hands in images (static mode) and videos (tracking mode); '
                    'print one JSON object per image / video frame.')
    parser.add_argument('files', metavar='FILE', nargs='+', help='image or video files')
    parser.add_argument('--max-hands', type=int, default=2, choices=range(1, 9),
                        metavar='N', help='most hands per frame, 1..8 (default 2)')
    parser.add_argument('--model-complexity', type=int, default=1, choices=(0, 1),
                        help='0 = lite, 1 = full (default 1)')
    parser.add_argument('--min-detection-confidence', type=_unit_float, default=0.5,
                        metavar='X', help='0..1 (default 0.5)')
    parser.add_argument('--min-tracking-confidence', type=_unit_float, default=0.5,
                        metavar='X', help='0..1, videos only (default 0.5)')
    parser.add_argument('--mirrored', action='store_true',
                        help='the input is mirrored (selfie view): keep MediaPipe labels '
                             'as they are instead of swapping them to the anatomical hand')
    parser.add_argument('--max-frames', type=_non_negative_int, default=0, metavar='N',
                        help='stop each video after N frames (0: all)')
    return parser.parse_args(argv)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not an integer: {text!r}') from None
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be 0 or more, got {value}')
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f'{text} is not in [0, 1]')
    return value


def _config(args: argparse.Namespace, static: bool) -> DetectorConfig:
    return DetectorConfig(max_num_hands=args.max_hands,
                          model_complexity=args.model_complexity,
                          min_detection_confidence=args.min_detection_confidence,
                          min_tracking_confidence=args.min_tracking_confidence,
                          static_image_mode=static,
                          mirrored_input=args.mirrored)


def is_image(path: str) -> bool:
    """Return whether ``path`` is treated as a still image (by its extension)."""
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _check_file(path: str) -> int:
    """Return the size of the regular file ``path``.

    :raises DetectionError: when it is missing, a directory or unreadable.
    """
    if os.path.isdir(path):
        raise DetectionError(f'cannot read {path}: it is a directory, not a file')
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise DetectionError(f'cannot read {path}: {exc.strerror}') from exc


def check_complete(path: str, data: bytes) -> None:
    """Refuse a JPEG or PNG whose end is missing (a copy cut short).

    cv2.imread decodes a truncated JPEG into a grey-filled image with only a libjpeg
    warning on stderr, so a cut file would silently count 0 hands. A complete JPEG
    ends with the EOI marker FF D9 (trailing NUL or whitespace padding allowed), a
    complete PNG with its IEND chunk.

    :raises DetectionError: when the end is missing.
    """
    tail = data.rstrip(b'\x00\r\n\t ')
    if data.startswith(_JPEG_SOI) and not tail.endswith(_JPEG_EOI):
        raise DetectionError(f'{path} is truncated: the JPEG has no end-of-image marker '
                             '(FF D9); was the copy cut short?')
    if data.startswith(_PNG_SIGNATURE) and not tail.endswith(_PNG_IEND):
        raise DetectionError(f'{path} is truncated: the PNG has no IEND chunk')


def detect_image(detector: HandDetector, path: str) -> dict[str, Any]:
    """Return the JSON record for one image.

    :raises DetectionError: when the file cannot be read, is truncated or cannot be
        decoded, or detection fails.
    """
    size = _check_file(path)
    if size > MAX_IMAGE_FILE_BYTES:
        raise DetectionError(f'{path} is {size} bytes, over the {MAX_IMAGE_FILE_BYTES} limit')
    try:
        with open(path, 'rb') as handle:
            data = handle.read(MAX_IMAGE_FILE_BYTES + 1)
    except OSError as exc:
        raise DetectionError(f'cannot read {path}: {exc.strerror}') from exc
    if not data:
        raise DetectionError(f'cannot decode image {path}: the file is empty')
    check_complete(path, data)
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise DetectionError(f'cannot decode image {path}: {exc}') from exc
    if bgr is None:
        raise DetectionError(f'cannot decode image {path}')
    return _record(detector, path, 'image', 0, bgr)


def detect_video(detector: HandDetector, path: str, max_frames: int = 0
                 ) -> Iterator[dict[str, Any]]:
    """Yield the JSON record of every frame of one video.

    :raises DetectionError: when the video cannot be opened, ends early by
        :func:`pianist_ros.common.video.truncation_error` (after the records of the
        frames that could be decoded), or detection fails.
    """
    _check_file(path)
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise DetectionError(f'cannot open video {path}')
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = 0
        while not max_frames or index < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            record = _record(detector, path, 'video', index, bgr)
            record['time_sec'] = round(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, 4)
            yield record
            index += 1
        if index == 0:
            raise DetectionError(f'no frame could be decoded from {path}')
        damage = '' if max_frames else truncation_error(path, index, total)
        if damage:
            raise DetectionError(damage)
    finally:
        capture.release()


def _record(detector: HandDetector, path: str, kind: str, index: int, bgr) -> dict[str, Any]:
    height, width = bgr.shape[:2]
    rgb = imaging.to_rgb('bgr8', width, height, bgr.strides[0], bgr)
    hands = detector.detect(rgb)
    return {'file': path, 'kind': kind, 'frame': index, 'width': width, 'height': height,
            'count': len(hands), 'hands': [h.to_dict() for h in hands]}


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Process every file, writing JSON lines to ``out``; return the exit status."""
    status = 0
    static_detector: HandDetector | None = None
    try:
        for path in args.files:
            try:
                if is_image(path):
                    if static_detector is None:
                        static_detector = HandDetector(_config(args, static=True))
                    _emit(out, detect_image(static_detector, path))
                else:
                    # A fresh tracker per video: tracking state must not leak across files.
                    with HandDetector(_config(args, static=False)) as video_detector:
                        for record in detect_video(video_detector, path, args.max_frames):
                            _emit(out, record)
            except DetectionError as exc:
                status = 1
                _emit(out, {'file': path, 'error': str(exc)})
                print(f'pianist-detect: {exc}', file=sys.stderr)
    finally:
        if static_detector is not None:
            static_detector.close()
    return status


def _emit(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record, separators=(',', ':')) + '\n')
    out.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pianist-detect``; return the exit status (1 if any file failed)."""
    args = parse_args(argv)
    try:
        return run(args, sys.stdout)
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, as other Unix tools do.
        sys.stderr.close()
        return 0


if __name__ == '__main__':
    sys.exit(main())
