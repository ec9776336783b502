"""Helpers for the detection tests: manifest parsing and matching hands by x (ROS-free)."""

from __future__ import annotations

import csv
import os
import re

_TRUE_HAND = re.compile(r'(left|right)@x=([0-9.]+)')
_MP_HAND = re.compile(r'(Left|Right):([0-9.]+)@x=([0-9.]+)')


def true_hands(row: dict) -> list[tuple[str, float]]:
    """Return ``[(label, x), ...]`` from ``true_hands_detail`` (labels 'Left'/'Right')."""
    return [(label.capitalize(), float(x))
            for label, x in _TRUE_HAND.findall(row.get('true_hands_detail') or '')]


def mediapipe_hands(row: dict) -> list[tuple[str, float]]:
    """Return ``[(label, x), ...]`` from ``mediapipe_handedness``."""
    return [(label, float(x))
            for label, _score, x in _MP_HAND.findall(row.get('mediapipe_handedness') or '')]


def match_by_x(expected: list[tuple[str, float]], detected: list[tuple[str, float]],
               tolerance: float = 0.08) -> list[tuple[str, str, float]]:
    """Pair each expected hand with the nearest detected hand by x.

    :return: ``[(expected_label, detected_label, distance), ...]``.
    :raises AssertionError: when a hand has no detected hand within ``tolerance``
        or two expected hands claim the same detection.
    """
    pairs, used = [], set()
    for label, x in expected:
        best = min(range(len(detected)), key=lambda i: abs(detected[i][1] - x))
        dist = abs(detected[best][1] - x)
        assert dist <= tolerance, f'no detected hand near x={x} in {detected}'
        assert best not in used, f'two expected hands match detection {detected[best]}'
        used.add(best)
        pairs.append((label, detected[best][0], dist))
    return pairs


def clip_segments(data_dir: str) -> list[dict]:
    """Return hands_clip_segments.csv rows."""
    with open(os.path.join(data_dir, 'hands_clip_segments.csv'), newline='',
              encoding='utf-8') as handle:
        return list(csv.DictReader(handle))


def min_median_max(text: str) -> tuple[int, int, int]:
    """Parse ``'0/2/2'`` into ``(0, 2, 2)``."""
    lo, mid, hi = (int(v) for v in text.split('/'))
    return lo, mid, hi
