"""The portable ``main()`` shape shared by every node's console script."""

from __future__ import annotations

from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import MultiThreadedExecutor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node


def run_node(factory: Callable[[], Node], args: list[str] | None = None,
             multithreaded: bool = False, after_create: Callable[[Node], None] | None = None
             ) -> int:
    """Init rclpy, build one node, spin until Ctrl-C / SIGTERM, and clean up.

    rclpy's default signal handlers turn SIGINT and SIGTERM into a context shutdown,
    which ends the spin with ``ExternalShutdownException``; both it and
    ``KeyboardInterrupt`` are a clean exit (status 0, no traceback).

    :param factory: builds the node after ``rclpy.init``.
    :param args: command-line arguments (``--ros-args ...``).
    :param multithreaded: spin on a MultiThreadedExecutor.
    :param after_create: optional hook, e.g. to auto-configure a lifecycle node.
    :return: process exit status.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        if after_create is not None:
            after_create(node)
        executor = MultiThreadedExecutor() if multithreaded else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
