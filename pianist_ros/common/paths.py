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


#: Environment variables that select a Fast DDS XML profile (Fast DDS 3 and 2).
DDS_PROFILE_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
#: Distributions on Fast DDS 2.x, which reads only FASTRTPS_DEFAULT_PROFILES_FILE.
#: Fast DDS 3 (Kilted and the PyPI wheels) warns that the old name is deprecated.
FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')


def dds_profile_vars(environ: dict | None = None) -> tuple[str, ...]:
    """Return the profile variables this ROS distribution's Fast DDS reads."""
    env = os.environ if environ is None else environ
    if env.get('ROS_DISTRO', '') in FAST_DDS_2_DISTROS:
        return DDS_PROFILE_VARS
    return DDS_PROFILE_VARS[:1]


def default_dds_profile(environ: dict | None = None) -> str:
    """Point Fast DDS at ``config/fastdds.xml`` unless a profile is already chosen.

    Only the publisher's profile decides whether a 0.9 MB frame fits in shared
    memory, so a process that publishes images needs it for rviz, rqt or any other
    process on the device to get full frames. An operator's own profile, or another
    RMW, is left alone. Call before the first node is created.

    :return: the profile now in effect ('' when none applies or none is installed).
    """
    env = os.environ if environ is None else environ
    if env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return ''
    chosen = next((env[var] for var in DDS_PROFILE_VARS if env.get(var)), '')
    if chosen:
        return chosen
    try:
        profile = os.path.join(share_dir(), 'config', 'fastdds.xml')
    except FileNotFoundError:
        return ''
    if not os.path.isfile(profile):
        return ''
    for var in dds_profile_vars(env):
        env[var] = profile
    return profile
