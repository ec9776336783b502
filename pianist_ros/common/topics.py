"""The topic contract and QoS profiles, in one place.

All names are relative so a namespace can prefix them; ``/diagnostics`` is the
standard absolute topic.
"""

from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy

IMAGE_RAW = 'camera/image_raw'
CAMERA_INFO = 'camera/camera_info'
CAMERA_STATE = 'camera/state'
HANDS_COUNT = 'hands/count'
HANDS_LANDMARKS = 'hands/landmarks'
HANDS_MARKERS = 'hands/markers'
HANDS_IMAGE_ANNOTATED = 'hands/image_annotated'
DIAGNOSTICS = '/diagnostics'

#: Publishers of images: best effort, keep last 5 (rclpy's sensor-data profile).
SENSOR_QOS = qos_profile_sensor_data

#: Subscribers that must only ever see the newest frame (the detector): depth 1.
LATEST_ONLY_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                             reliability=ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.VOLATILE)

#: Latched state topics (camera/state): late joiners get the last value.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: Small result topics (counts, landmarks, markers).
RESULT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)
