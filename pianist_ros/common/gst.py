"""The single import site for GStreamer (PyGObject), initialised once per process.

Why the ``libgcc_s`` preload: Debian's libgstreamer links ``libunwind.so.8``, whose
``_Unwind_*`` symbols then win the global lookup for every library loaded later. C++
exceptions thrown inside pybind11 modules loaded after that (rclpy's RCLError,
matplotlib's ft2font, imported by MediaPipe) unwind through the wrong unwinder and
``std::terminate`` aborts the process. Loading gcc's own unwinder with RTLD_GLOBAL
first keeps it in front (test/test_common.py reproduces the abort in a subprocess).
"""

from __future__ import annotations

import ctypes
import threading

_LOCK = threading.Lock()
_GST = None


class GstUnavailable(RuntimeError):
    """PyGObject or GStreamer 1.x is not installed."""


def _preload_gcc_unwinder() -> None:
    try:
        ctypes.CDLL('libgcc_s.so.1', mode=ctypes.RTLD_GLOBAL)
    except OSError:
        # Not glibc/gcc (e.g. musl): nothing to protect.
        pass


def gst():
    """Return the initialised ``Gst`` module.

    :raises GstUnavailable: when PyGObject or GStreamer 1.x is missing.
    """
    global _GST  # noqa: PLW0603 - Gst.init is process-wide by nature
    with _LOCK:
        if _GST is None:
            _preload_gcc_unwinder()
            try:
                import gi
                gi.require_version('Gst', '1.0')
                from gi.repository import Gst
            except (ImportError, ValueError) as exc:
                raise GstUnavailable(f'GStreamer 1.x through PyGObject is not available: '
                                     f'{exc}') from exc
            if not Gst.is_initialized():
                Gst.init(None)
            _GST = Gst
        return _GST
