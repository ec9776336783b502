"""Find installed data files (config, launch) for pip, editable and colcon installs."""

from __future__ import annotations

import os
import sys

PACKAGE = 'pianist_ros'


def share_dir() -> str:
    """Return the package's share directory.

    Order: the ament index (colcon / apt install), ``<prefix>/share/pianist_ros``
    (pip install into a venv), then the source tree (editable install).

    :raises FileNotFoundError: when none of them has ``config/pianist.yaml``.
    """
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory
        from ament_index_python.packages import PackageNotFoundError
        try:
            candidates.append(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, OSError):
            # OSError: AMENT_PREFIX_PATH unset (a plain venv).
            pass
    except ImportError:
        pass
    candidates.append(os.path.join(sys.prefix, 'share', PACKAGE))
    candidates.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for path in candidates:
        if os.path.isfile(os.path.join(path, 'config', 'pianist.yaml')):
            return path
    raise FileNotFoundError(f'pianist_ros share directory not found in {candidates}')


def default_config() -> str:
    """Return the path of the default ``config/pianist.yaml``."""
    return os.path.join(share_dir(), 'config', 'pianist.yaml')
