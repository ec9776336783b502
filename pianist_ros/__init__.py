"""pianist_ros: self-healing hand-tracking camera stack for edge devices."""

__version__ = '0.1.0'
