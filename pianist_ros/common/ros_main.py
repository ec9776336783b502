"""The portable ``main()`` shape shared by every console script, with orderly shutdown.

rclpy's own SIGINT/SIGTERM handlers shut the context down at once, while node threads
(capture worker, detector worker, HTTP server) may still be publishing: they then fail
with "context is invalid" tracebacks. Here the signals only set an event; the spin
loop ends, nodes are destroyed (their threads joined), and only then is the context
shut down. A second signal during cleanup interrupts it.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable, Iterable

import rclpy
from rclpy.executors import Executor
from rclpy.executors import ExternalShutdownException
from rclpy.executors import MultiThreadedExecutor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from pianist_ros.common.paths import default_dds_profile


class StopOnSignal:
    """Context manager: SIGINT, SIGTERM, SIGHUP set :attr:`event` instead of killing the spin."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.event = threading.Event()
        self._previous = {}

    def __enter__(self) -> threading.Event:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self.event

    def _on_signal(self, _signum, _frame) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *_exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def init(args: list[str] | None = None) -> None:
    """Initialise rclpy without its signal handlers (StopOnSignal handles signals).

    Also selects the package's Fast DDS profile unless one is set
    (:func:`pianist_ros.common.paths.default_dds_profile`), so full-size frames reach
    other processes (rviz, rqt) over shared memory.
    """
    default_dds_profile()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def spin_until_stopped(executor: Executor, stop: threading.Event,
                       duration: float = 0.0) -> None:
    """Spin until ``stop`` is set, the context shuts down, or ``duration`` s pass (0: none).

    :raises ExternalShutdownException: never; a context shut down elsewhere just ends
        the loop.
    """
    deadline = time.monotonic() + duration if duration > 0 else None
    context = executor.context
    try:
        while not stop.is_set() and context.ok():
            executor.spin_once(timeout_sec=0.1)
            if deadline is not None and time.monotonic() >= deadline:
                break
    except ExternalShutdownException:
        pass


def destroy_all(nodes: Iterable[Node]) -> None:
    """Destroy nodes in reverse order of creation, so consumers go before producers."""
    for node in reversed(list(nodes)):
        node.destroy_node()


def run_node(factory: Callable[[], Node], args: list[str] | None = None,
             multithreaded: bool = False,
             after_create: Callable[[Node], None] | None = None) -> int:
    """Init rclpy, build one node, spin until Ctrl-C / SIGTERM, and clean up.

    :param factory: builds the node after ``rclpy.init``.
    :param args: command-line arguments (``--ros-args ...``).
    :param multithreaded: spin on a MultiThreadedExecutor (only for nodes whose
        callbacks must overlap; the default single thread is cheaper).
    :param after_create: optional hook, e.g. to auto-configure a lifecycle node.
    :return: process exit status (0 on a signal-initiated stop).
    """
    init(args)
    node = None
    try:
        with StopOnSignal() as stop:
            node = factory()
            if after_create is not None:
                after_create(node)
            executor = MultiThreadedExecutor() if multithreaded else SingleThreadedExecutor()
            executor.add_node(node)
            spin_until_stopped(executor, stop)
            executor.remove_node(node)
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
