"""Launch one plain (non-lifecycle) pianist_ros node with respawn.

Used by bringup.launch.py for hand_detector, telemetry_bridge, image_recorder and
ota_manager; also usable alone:
``ros2 launch pianist_ros node.launch.py node:=hand_detector``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from pianist_ros.bringup import stack_overrides

#: Node names this file may start; each is also its console-script name.
NODES = ('hand_detector', 'telemetry_bridge', 'image_recorder', 'ota_manager')


def _start_node(context):
    """Build the Node once the launch arguments are known (their values pick parameters)."""
    name = LaunchConfiguration('node').perform(context)
    with_detector = LaunchConfiguration('with_detector').perform(context).strip().lower()
    parameters = [LaunchConfiguration('params_file')]
    extra = stack_overrides(name, with_detector not in ('false', '0', 'no', 'off'))
    if extra:
        parameters.append(extra)
    return [Node(
        package='pianist_ros',
        executable=name,
        name=name,
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=parameters,
        respawn=LaunchConfiguration('use_respawn'),
        respawn_delay=2.0,
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )]


def generate_launch_description() -> LaunchDescription:
    """Declare the launch arguments and start the named node."""
    default_params = os.path.join(
        get_package_share_directory('pianist_ros'), 'config', 'pianist.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('node', choices=list(NODES),
                              description='Which node to start'),
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace for the node and its topics'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Full path to the parameter file'),
        DeclareLaunchArgument('use_respawn', default_value='true',
                              description='Restart the node if it exits'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level (debug, info, warn, error, fatal)'),
        DeclareLaunchArgument('with_detector', default_value='true',
                              description='Whether hand_detector runs in this stack '
                                          '(false: telemetry_bridge requires only the camera)'),
        OpaqueFunction(function=_start_node),
    ])
