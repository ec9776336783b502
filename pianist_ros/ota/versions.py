"""Version decisions with :mod:`packaging.version` (PEP 440), never string comparison."""

from __future__ import annotations

import enum

from packaging.version import InvalidVersion
from packaging.version import Version

from pianist_ros.ota.errors import ManifestError


class Decision(enum.Enum):
    """What to do with an offered version relative to the installed one."""

    UPGRADE = 'upgrade'
    SAME = 'same'
    DOWNGRADE = 'downgrade'
    PRERELEASE_SKIPPED = 'prerelease_skipped'


def parse(text: str) -> Version:
    """Parse a version string; a leading ``v`` (git tag style) is accepted.

    :raises ManifestError: not a PEP 440 version.
    """
    try:
        return Version(text)
    except (InvalidVersion, TypeError) as exc:
        raise ManifestError(f'invalid version {text!r}') from exc


def decide(current: str | None, offered: str, allow_prerelease: bool = False) -> Decision:
    """Compare the offered version with the installed one.

    ``1.10.0 > 1.9.0``; ``1.1.0rc1 < 1.1.0``; ``1.0 == 1.0.0``. A pre-release newer than
    the current version is skipped unless ``allow_prerelease``. An unknown current
    version (``None``) accepts any offered release.

    :raises ManifestError: either version is invalid.
    """
    new = parse(offered)
    old = parse(current) if current else None
    if old is not None and new == old:
        return Decision.SAME
    if old is not None and new < old:
        return Decision.DOWNGRADE
    if (new.is_prerelease or new.is_devrelease) and not allow_prerelease:
        return Decision.PRERELEASE_SKIPPED
    return Decision.UPGRADE
