"""Bring up the whole pianist_ros stack: ``ros2 launch pianist_ros bringup.launch.py``.

Includes camera.launch.py (lifecycle camera, auto-configured and auto-activated) and
node.launch.py once per plain node, each switchable with a ``use_<node>`` argument.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import IncludeLaunchDescription
from launch.actions import SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import EnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from pianist_ros.common.paths import FAST_DDS_2_DISTROS

#: (node name, launch switch, default) for every plain node bringup may start.
OPTIONAL_NODES = (
    ('hand_detector', 'use_detector', 'true'),
    ('telemetry_bridge', 'use_telemetry', 'true'),
    ('image_recorder', 'use_recorder', 'false'),
    ('ota_manager', 'use_ota', 'false'),
)


def generate_launch_description() -> LaunchDescription:
    """Declare the stack's launch arguments and include every node's launch file."""
    share = get_package_share_directory('pianist_ros')
    launch_dir = os.path.join(share, 'launch')
    default_params = os.path.join(share, 'config', 'pianist.yaml')
    dds_profile = os.path.join(share, 'config', 'fastdds.xml')
    common = {
        'namespace': LaunchConfiguration('namespace'),
        'params_file': LaunchConfiguration('params_file'),
        'log_level': LaunchConfiguration('log_level'),
    }
    actions = [
        # Camera frames between processes need a bigger shared-memory segment than
        # Fast DDS's default (config/fastdds.xml); an operator's own profile wins.
        # Fast DDS 2 (Humble, Iron, Jazzy) reads only the old name; Fast DDS 3 warns on it.
        *[SetEnvironmentVariable(var, EnvironmentVariable(var, default_value=dds_profile))
          for var in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
          if var.startswith('FASTDDS') or os.environ.get('ROS_DISTRO', '') in FAST_DDS_2_DISTROS],
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace for every node and topic'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Full path to the parameter file for all nodes'),
        DeclareLaunchArgument('source', default_value='',
                              description="Camera source override: 'synthetic', a file, "
                                          '/dev/videoN, rtsp/http URL or GStreamer pipeline'),
        DeclareLaunchArgument('loop', default_value='',
                              description="Loop a video file source: 'true' or 'false' "
                                          '(empty: use params_file)'),
        DeclareLaunchArgument('use_respawn', default_value='true',
                              description='Respawn plain nodes that exit'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level (debug, info, warn, error, fatal)'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(os.path.join(launch_dir, 'camera.launch.py')),
            launch_arguments={**common, 'source': LaunchConfiguration('source'),
                              'loop': LaunchConfiguration('loop')}.items(),
        ),
    ]
    for node, switch, default in OPTIONAL_NODES:
        actions.append(DeclareLaunchArgument(switch, default_value=default,
                                             description=f'Start {node}'))
        actions.append(GroupAction(
            condition=IfCondition(LaunchConfiguration(switch)),
            actions=[IncludeLaunchDescription(
                PythonLaunchDescriptionSource(os.path.join(launch_dir, 'node.launch.py')),
                launch_arguments={**common, 'node': node,
                                  'use_respawn': LaunchConfiguration('use_respawn'),
                                  'with_detector': LaunchConfiguration('use_detector')}.items(),
            )],
        ))
    # Status line + systemd watchdog: READY=1 / WATCHDOG=1 only while frames flow.
    actions.append(Node(
        package='pianist_ros',
        executable='stack_monitor',
        name='stack_monitor',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[{'require_detector': LaunchConfiguration('use_detector')}],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    ))
    return LaunchDescription(actions)
