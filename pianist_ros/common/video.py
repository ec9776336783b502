"""Video file checks shared by the camera node and ``pianist-detect`` (ROS-free)."""

from __future__ import annotations

#: A failed read this many frames or more before the file's frame count means the file
#: is damaged or truncated (the count in the container header is exact for mp4, an
#: estimate for some other containers, hence the margin).
TRUNCATION_MARGIN_FRAMES = 3


def truncation_error(path: str, done: int, total: int) -> str:
    """Return why a video that stopped after ``done`` of ``total`` frames is damaged.

    '' when it ended where its header said, or the header gave no frame count.
    """
    if not total or done + TRUNCATION_MARGIN_FRAMES > total:
        return ''
    return f'video file damaged or truncated at frame {done} of {total}: {path}'
