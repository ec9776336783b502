"""Hand detection: MediaPipe Hands on camera frames (ROS-free logic plus ``node.py``)."""
