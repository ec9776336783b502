"""ament_python package definition for pianist_ros (also installs with plain pip)."""

from glob import glob
import os

from setuptools import find_packages
from setuptools import setup

PACKAGE_NAME = 'pianist_ros'
HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements(name: str) -> list[str]:
    """Read pinned requirements so every pin lives only in requirements/."""
    path = os.path.join(HERE, 'requirements', name)
    if not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as handle:
        return [
            line.strip() for line in handle
            if line.strip() and not line.startswith(('#', '-r'))
        ]


setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE_NAME]),
        ('share/' + PACKAGE_NAME, ['package.xml']),
        (os.path.join('share', PACKAGE_NAME, 'launch'), glob('launch/*.launch.py')),
        (os.path.join('share', PACKAGE_NAME, 'config'),
         glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.xml')),
    ],
    # Runtime pins (requirements/base.txt). ROS packages come from the ROS install
    # (rosdep / apt) or, in a plain venv, from requirements/ros-pypi.txt.
    install_requires=['setuptools'] + _requirements('base.txt'),
    zip_safe=True,
    maintainer='pianist_ros maintainers',
    maintainer_email='pianist-ros@example.com',
    description='Self-healing hand-tracking camera stack for a fleet of edge devices.',
    license='Apache-2.0',
    extras_require={
        'test': ['pytest', 'pytest-timeout', 'flake8'],
    },
    entry_points={
        'console_scripts': [
            'camera = pianist_ros.camera.node:main',
            'hand_detector = pianist_ros.detection.node:main',
            'telemetry_bridge = pianist_ros.telemetry.node:main',
            'image_recorder = pianist_ros.recorder.node:main',
            'ota_manager = pianist_ros.ota.node:main',
            'stack_monitor = pianist_ros.monitor:main',
            'pianist-bringup = pianist_ros.bringup:main',
            'pianist-detect = pianist_ros.detection.cli:main',
            'pianist-ota = pianist_ros.ota.cli:main',
        ],
    },
)
