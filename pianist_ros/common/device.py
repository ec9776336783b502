"""Identity of this device, for diagnostics hardware ids, health and OTA reports."""

import os
import socket


def device_id() -> str:
    """Return ``$PIANIST_DEVICE_ID`` if set, else the host name."""
    return os.environ.get('PIANIST_DEVICE_ID') or socket.gethostname()
