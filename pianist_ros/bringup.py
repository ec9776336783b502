"""``pianist-bringup``: every node in one process, from the same config file.

This is how the stack runs where ``ros2 launch`` is not installed (a plain venv, the
``make run`` target). It builds the nodes named in :data:`NODES` with the parameters
of ``config/pianist.yaml``, configures and activates the camera lifecycle node,
spins all of them on one SingleThreadedExecutor and logs one status line every few
seconds. Ctrl-C and SIGTERM shut everything down cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import importlib
import os
import sys

from pianist_ros.common.paths import default_config


@dataclass(frozen=True)
class NodeSpec:
    """Where a node class lives and whether bringup starts it by default."""

    module: str
    cls: str
    default_on: bool
    flag: str = ''
    lifecycle: bool = False


#: Node name -> where its class lives. Node names are the keys of config/pianist.yaml.
NODES: dict[str, NodeSpec] = {
    'camera': NodeSpec('pianist_ros.camera.node', 'CameraNode', True, lifecycle=True),
    'hand_detector': NodeSpec('pianist_ros.detection.node', 'HandDetectorNode', True,
                              'detector'),
    'telemetry_bridge': NodeSpec('pianist_ros.telemetry.node', 'TelemetryBridgeNode', True,
                                 'telemetry'),
    'image_recorder': NodeSpec('pianist_ros.recorder.node', 'ImageRecorderNode', False,
                               'recorder'),
    'ota_manager': NodeSpec('pianist_ros.ota.node', 'OtaManagerNode', False, 'ota'),
}


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse bringup options; everything after ``--ros-args`` goes to rclpy."""
    parser = argparse.ArgumentParser(
        prog='pianist-bringup',
        description='Run the whole pianist_ros stack in one process.')
    parser.add_argument('--config', default=None,
                        help='parameter file (default: the installed config/pianist.yaml)')
    parser.add_argument('--source', default='',
                        help="camera source: 'synthetic', a file, /dev/videoN or index, "
                             'rtsp/http URL, or a GStreamer pipeline (default: from config)')
    parser.add_argument('--loop', action=argparse.BooleanOptionalAction, default=None,
                        help='loop a video file source (default: from config)')
    parser.add_argument('--namespace', default='', help='namespace for every node')
    parser.add_argument('--log-level', default='info',
                        choices=['debug', 'info', 'warn', 'error', 'fatal'])
    parser.add_argument('--status-period', type=_non_negative, default=5.0,
                        help='seconds between status log lines (0 disables)')
    parser.add_argument('--duration', type=_non_negative, default=0.0,
                        help='exit cleanly after this many seconds (0: run until stopped)')
    for name, spec in NODES.items():
        if not spec.flag:
            continue
        parser.add_argument(f'--{spec.flag}', dest=f'with_{name}',
                            action=argparse.BooleanOptionalAction, default=spec.default_on,
                            help=f'start {name} (default: {"on" if spec.default_on else "off"})')
    if argv is None:
        argv = sys.argv[1:]
    ros_args: list[str] = []
    if '--ros-args' in argv:
        i = argv.index('--ros-args')
        argv, ros_args = argv[:i], argv[i:]
    return parser.parse_args(argv), ros_args


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}') from None
    if not value >= 0 or value == float('inf'):
        raise argparse.ArgumentTypeError(f'must be a finite number >= 0, got {text}')
    return value


def namespace_error(namespace: str) -> str:
    """Return why ``namespace`` is not a valid ROS namespace, or ''."""
    if not namespace:
        return ''
    from rclpy.exceptions import InvalidNamespaceException
    from rclpy.validate_namespace import validate_namespace
    try:
        validate_namespace('/' + namespace.lstrip('/'))  # a relative one is taken as absolute
    except InvalidNamespaceException as exc:
        return str(exc).strip()
    return ''


def _enabled(args: argparse.Namespace) -> list[str]:
    return [n for n, spec in NODES.items() if not spec.flag or getattr(args, f'with_{n}')]


def stack_overrides(name: str, with_detector: bool) -> dict:
    """Parameters node ``name`` needs because of which nodes run beside it.

    Shared by ``pianist-bringup`` and ``node.launch.py`` (``with_detector``), so both
    ways of starting the stack agree. Without a detector, health is the camera's
    alone: no frames are processed, so none can be required.
    """
    if name == 'telemetry_bridge' and not with_detector:
        return {'required_components': ['camera: camera'], 'require_frames': False}
    return {}


def _overrides(name: str, args: argparse.Namespace) -> list:
    """Return the parameter overrides bringup's own options imply for node ``name``."""
    from rclpy.parameter import Parameter

    overrides = []
    if name == 'camera':
        if args.source:
            overrides.append(Parameter('source', Parameter.Type.STRING, args.source))
        if args.loop is not None:
            overrides.append(Parameter('loop', Parameter.Type.BOOL, args.loop))
    for key, value in stack_overrides(name, args.with_hand_detector).items():
        overrides.append(Parameter(key, value=value))
    return overrides


def _load_class(spec: NodeSpec):
    module = importlib.import_module(spec.module)
    return getattr(module, spec.cls)


def main(argv: list[str] | None = None) -> int:
    """Run the stack until Ctrl-C, SIGTERM or ``--duration``; return the exit status."""
    args, ros_args = parse_args(argv)
    config = args.config or default_config()
    problem = namespace_error(args.namespace)
    if problem:
        print(f'pianist-bringup: invalid --namespace {args.namespace!r}: {problem}',
              file=sys.stderr)
        return 2
    if not os.path.isfile(config):
        print(f'pianist-bringup: config file not found: {config}', file=sys.stderr)
        return 2

    import rclpy
    from rclpy.exceptions import ParameterException
    from rclpy.executors import SingleThreadedExecutor

    from pianist_ros.common import ros_main
    from pianist_ros.monitor import StackMonitorNode

    rcl_args = ['--ros-args', '--params-file', config, '--log-level', args.log_level]
    if ros_args:
        rcl_args += ros_args[1:]
    nodes = []
    with ros_main.StopOnSignal() as stop:
        try:
            ros_main.init(rcl_args)
        except Exception as exc:  # noqa: BLE001 - rcl reports a bad params file this way
            print(f'pianist-bringup: cannot start ROS with {config}: {exc}', file=sys.stderr)
            return 2
        try:
            for name in _enabled(args):
                try:
                    node_cls = _load_class(NODES[name])
                    nodes.append(node_cls(namespace=args.namespace,
                                          parameter_overrides=_overrides(name, args)))
                except (ParameterException, ValueError, TypeError) as exc:
                    # A bad value in the config must not take /health down with it:
                    # the other nodes run, and the missing one shows up as an error.
                    rclpy.logging.get_logger('pianist_bringup').error(
                        f'{name} not started: invalid parameter in {config}: {exc}')
            nodes.append(StackMonitorNode(namespace=args.namespace, period=args.status_period,
                                          require_detector=args.with_hand_detector))
            # One thread spins every node: each node does its blocking work (capture,
            # inference, HTTP, encoding, git) in threads or processes of its own, and
            # rclpy's MultiThreadedExecutor busy-polls enough to starve inference on
            # two cores (bench/bench_detector.py).
            executor = SingleThreadedExecutor()
            for node in nodes:
                executor.add_node(node)
            _activate_lifecycle_nodes(nodes)
            ros_main.spin_until_stopped(executor, stop, args.duration)
            for node in nodes:
                executor.remove_node(node)
        except KeyboardInterrupt:
            pass
        finally:
            ros_main.destroy_all(nodes)
            rclpy.try_shutdown()
    return 0


def _activate_lifecycle_nodes(nodes) -> None:
    """Configure and activate every lifecycle node (the camera), logging failures."""
    from rclpy.lifecycle import LifecycleNode
    from rclpy.lifecycle import TransitionCallbackReturn

    for node in nodes:
        if not isinstance(node, LifecycleNode):
            continue
        for trigger in (node.trigger_configure, node.trigger_activate):
            result = trigger()
            if result != TransitionCallbackReturn.SUCCESS:
                node.get_logger().error(
                    f'auto-start: {trigger.__name__} returned {result.name}; the node stays '
                    'inactive until an operator drives it (ros2 lifecycle set)')
                break


if __name__ == '__main__':
    sys.exit(main())
