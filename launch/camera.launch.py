"""Launch the camera lifecycle node and drive it to ACTIVE (Humble-safe autostart).

Autostart uses ChangeState events from OnProcessStart and OnStateTransition handlers
(the LifecycleTransition action only exists from Jazzy on).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import EmitEvent
from launch.actions import OpaqueFunction
from launch.actions import RegisterEventHandler
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition


def _camera_actions(context):
    params_file = LaunchConfiguration('params_file').perform(context)
    source = LaunchConfiguration('source').perform(context)
    loop = LaunchConfiguration('loop').perform(context).strip().lower()
    log_level = LaunchConfiguration('log_level').perform(context)
    parameters = [params_file]
    if source:
        parameters.append({'source': source})
    if loop:
        parameters.append({'loop': loop == 'true'})
    camera = LifecycleNode(
        package='pianist_ros',
        executable='camera',
        name='camera',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=parameters,
        arguments=['--ros-args', '--log-level', log_level],
    )
    autostart = LaunchConfiguration('autostart')
    configure = RegisterEventHandler(
        OnProcessStart(
            target_action=camera,
            on_start=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(camera),
                transition_id=Transition.TRANSITION_CONFIGURE))],
        ),
        condition=IfCondition(autostart),
    )
    activate = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=camera,
            start_state='configuring', goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(
                lifecycle_node_matcher=matches_action(camera),
                transition_id=Transition.TRANSITION_ACTIVATE))],
        ),
        condition=IfCondition(autostart),
    )
    return [camera, configure, activate]


def generate_launch_description() -> LaunchDescription:
    """Declare the camera's launch arguments and start it."""
    default_params = os.path.join(
        get_package_share_directory('pianist_ros'), 'config', 'pianist.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='',
                              description='Namespace for the camera node and its topics'),
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='Full path to the parameter file'),
        DeclareLaunchArgument('source', default_value='',
                              description="Camera source override: 'synthetic', a file, "
                                          '/dev/videoN, rtsp/http URL or GStreamer pipeline '
                                          '(empty: use params_file)'),
        DeclareLaunchArgument('loop', default_value='',
                              description="Loop a video file source: 'true' or 'false' "
                                          '(empty: use params_file)'),
        DeclareLaunchArgument('autostart', default_value='true',
                              description='Configure and activate the camera at start'),
        DeclareLaunchArgument('log_level', default_value='info',
                              description='Log level (debug, info, warn, error, fatal)'),
        OpaqueFunction(function=_camera_actions),
    ])
