"""``pianist-detect`` run as a real subprocess on the real images and clip."""

import json
import os
import subprocess

import numpy as np
import pytest

from detection_support import clip_segments
from detection_support import match_by_x
from detection_support import mediapipe_hands
from detection_support import min_median_max
from support import image_rows
from support import REPO
from support import script


def _run(args, timeout=180):
    env = dict(os.environ)
    # Test the working tree's code whatever state the venv's editable install is in.
    env['PYTHONPATH'] = os.pathsep.join(p for p in (REPO, env.get('PYTHONPATH')) if p)
    result = subprocess.run([script('pianist-detect'), *args], capture_output=True,
                            text=True, timeout=timeout, env=env, cwd='/')
    records = [json.loads(line) for line in result.stdout.splitlines()]
    return result, records


def test_images_and_clip_agree_with_the_manifest(data_dir, manifest):
    rows = image_rows(manifest)
    files = [os.path.join(data_dir, r['file']) for r in rows]
    clip = os.path.join(data_dir, 'hands_clip.mp4')
    missing = os.path.join(data_dir, 'no_such_file.jpg')
    result, records = _run(['--max-hands', '4', '--model-complexity', '1', *files, clip,
                            missing])
    assert result.returncode == 1, result.stderr[-2000:]
    by_file = {}
    for record in records:
        by_file.setdefault(record['file'], []).append(record)
    for row, path in zip(rows, files):
        (record,) = by_file[path]
        assert record['kind'] == 'image' and record['frame'] == 0
        assert record['count'] == int(row['hands_detected']) == len(record['hands']), path
        for hand in record['hands']:
            assert len(hand['landmarks']) == 21 and all(len(p) == 3 for p in hand['landmarks'])
            assert hand['handedness'] in ('Left', 'Right') and 0.5 <= hand['score'] <= 1.0
    frames = by_file[clip]
    assert [r['frame'] for r in frames] == list(range(150))
    assert all(r['kind'] == 'video' and (r['width'], r['height']) == (640, 480) for r in frames)
    for segment in clip_segments(data_dir):
        lo, median, hi = min_median_max(segment['clip_mp_video_mode_min_median_max'])
        counts = [r['count'] for r in frames[int(segment['start_frame']):
                                             int(segment['end_frame']) + 1]]
        assert lo <= min(counts) and max(counts) <= hi, (segment['segment'], counts)
        assert np.median(counts) == median, (segment['segment'], counts)
    (error,) = by_file[missing]
    assert 'error' in error and 'no_such_file.jpg' in result.stderr


def test_mirrored_flag_keeps_mediapipe_labels(data_dir, manifest):
    rows = [r for r in image_rows(manifest) if mediapipe_hands(r)]
    files = [os.path.join(data_dir, r['file']) for r in rows]
    result, records = _run(['--max-hands', '4', '--mirrored', *files])
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(records) == len(rows)
    for row, record in zip(rows, records):
        detected = [(h['handedness'], float(np.mean([p[0] for p in h['landmarks']])))
                    for h in record['hands']]
        for truth, got, _ in match_by_x(mediapipe_hands(row), detected):
            assert got == truth, row['file']
        assert all(h['handedness'] == h['mediapipe_label'] for h in record['hands'])


@pytest.mark.parametrize('args', [['--max-hands', '0', 'x.jpg'],
                                  ['--model-complexity', '2', 'x.jpg'],
                                  ['--min-detection-confidence', '1.5', 'x.jpg'],
                                  ['--max-frames', '-1', 'x.mp4'],
                                  []])
def test_bad_arguments_exit_2(args):
    result, records = _run(args, timeout=60)
    assert result.returncode == 2 and not records
    assert 'usage: pianist-detect' in result.stderr


def test_directories_and_truncated_images_are_named_errors(data_dir, tmp_path):
    good = os.path.join(data_dir, 'thumb_up.jpg')
    with open(good, 'rb') as handle:
        data = handle.read()
    cut_jpg = tmp_path / 'cut.jpg'
    cut_jpg.write_bytes(data[:len(data) * 2 // 3])  # a copy cut short
    padded = tmp_path / 'padded.jpg'
    padded.write_bytes(data + b'\x00' * 64)  # padding after EOI is still a whole JPEG
    folder = tmp_path / 'adir'
    folder.mkdir()
    result, records = _run([str(folder), str(cut_jpg), str(padded), good, str(folder) + '.jpg'])
    assert result.returncode == 1, result.stderr[-2000:]
    by_file = {r['file']: r for r in records}
    assert 'is a directory' in by_file[str(folder)]['error']
    assert 'truncated' in by_file[str(cut_jpg)]['error']
    assert 'FF D9' in by_file[str(cut_jpg)]['error']
    assert by_file[str(padded)]['count'] == by_file[good]['count'] == 1
    assert 'No such file' in by_file[str(folder) + '.jpg']['error']
    assert f'{cut_jpg} is truncated' in result.stderr


def test_empty_image_and_cut_video_are_errors_and_later_files_still_run(data_dir, tmp_path):
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    with open(os.path.join(data_dir, 'hands_clip.mp4'), 'rb') as handle:
        clip = handle.read()
    cut = tmp_path / 'cut.mp4'
    cut.write_bytes(clip[:len(clip) // 3])  # a copy or download that stopped early
    good = os.path.join(data_dir, 'thumb_up.jpg')
    result, records = _run([str(empty), str(cut), good])
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    errors = {r['file']: r['error'] for r in records if 'error' in r}
    assert 'the file is empty' in errors[str(empty)]
    assert 'damaged or truncated at frame' in errors[str(cut)]
    decoded = [r for r in records if r['file'] == str(cut) and 'error' not in r]
    assert decoded and decoded[-1]['frame'] == len(decoded) - 1, 'frames before the cut kept'
    assert [r['count'] for r in records if r['file'] == good] == [1]
