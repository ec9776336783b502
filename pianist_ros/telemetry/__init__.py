"""Telemetry bridge: ROS diagnostics and frame flow to HTTP /health, /metrics, /livez, /readyz."""
