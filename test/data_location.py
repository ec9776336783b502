"""Where the shared hand test data lives (no pytest, no ROS: tests, fixtures and benches use it).

The data is never committed; it sits beside the checkout in ``../shared/data/hands``.
A clone made elsewhere (``git clone /work/main /tmp/x``) still finds it through the
clone's ``origin`` remote when that is a local path. ``$PIANIST_TEST_DATA`` wins.
"""

from __future__ import annotations

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = 'MANIFEST.csv'
RELATIVE = os.path.join('shared', 'data', 'hands')


def _origin_checkout(repo: str) -> str:
    """The local path of the clone's ``origin`` remote, or '' when it is not local."""
    try:
        url = subprocess.run(['git', '-C', repo, 'config', '--get', 'remote.origin.url'],
                             capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ''
    if url.startswith('file://'):
        url = url[len('file://'):]
    return url if url and os.path.isabs(url) and os.path.isdir(url) else ''


def candidates(repo: str = REPO) -> list[str]:
    """Directories searched, in order."""
    found = [os.environ.get('PIANIST_TEST_DATA', '')]
    parent = os.path.abspath(repo)
    while True:  # ../shared, ../../shared, ... up to /
        parent_next = os.path.dirname(parent)
        found.append(os.path.join(parent_next, RELATIVE))
        if parent_next == parent:
            break
        parent = parent_next
    origin = _origin_checkout(repo)
    if origin:
        found.append(os.path.join(os.path.dirname(os.path.abspath(origin)), RELATIVE))
    return [path for path in dict.fromkeys(found) if path]


def hands_data(repo: str = REPO) -> str | None:
    """Absolute path of the hand data directory, or None."""
    for path in candidates(repo):
        if os.path.isfile(os.path.join(path, MARKER)):
            return os.path.abspath(path)
    return None


def hands_clip(repo: str = REPO) -> str | None:
    """Absolute path of ``hands_clip.mp4``, or None."""
    path = hands_data(repo)
    return os.path.join(path, 'hands_clip.mp4') if path else None
