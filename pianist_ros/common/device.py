"""Identity of this device, for diagnostics hardware ids, health and OTA reports."""

import os
import socket
import subprocess


def device_id() -> str:
    """Return ``$PIANIST_DEVICE_ID`` if set, else the host name."""
    return os.environ.get('PIANIST_DEVICE_ID') or socket.gethostname()


def software_revision() -> str:
    """Return the git commit this code runs from, or '' when it is not a git checkout.

    ``$PIANIST_GIT_HASH`` wins (set it in images built without .git). The OTA
    manager's health gate compares it with the commit it just checked out, which
    tells the restarted process apart from the old one.
    """
    env = os.environ.get('PIANIST_GIT_HASH', '').strip()
    if env:
        return env
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        result = subprocess.run(['git', '-C', here, 'rev-parse', 'HEAD'], capture_output=True,
                                text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    text = result.stdout.strip()
    return text if result.returncode == 0 and len(text) == 40 else ''
