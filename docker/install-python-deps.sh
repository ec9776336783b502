#!/usr/bin/env bash
# Build the image's venv from the same pinned requirements/base.txt the dev venv uses.
#
#   install-python-deps.sh VENV REQUIREMENTS_DIR [pip|base]
#
# The venv sees the system site-packages, so ROS's Python packages (rclpy, launch,
# cv_bridge, gi) from the base image stay importable, while every pinned package is
# installed into the venv itself (--ignore-installed), which comes first on sys.path.
#
# OpenCV: mediapipe pulls opencv-contrib-python (pinned in base.txt). That PyPI wheel
# has FFMPEG and V4L2 but no GStreamer and no CUDA. With "pip" (x86_64) it is the cv2
# everyone imports, and any apt python3-opencv (pulled by ros-*-cv-bridge) is shadowed.
# With "base" (Jetson) the wheel is removed from the venv after the install, so cv2
# resolves to the base image's OpenCV (GStreamer, CUDA); mediapipe only needs `import
# cv2`, and a numpy-1.x-built cv2 works with the pinned numpy 1.26.
set -euo pipefail

if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then
  echo "usage: $0 VENV REQUIREMENTS_DIR [pip|base]" >&2
  exit 2
fi
venv=$1
req_dir=$2
opencv=${3:-pip}
case "$opencv" in
  pip | base) ;;
  *)
    echo "install-python-deps: OPENCV must be 'pip' or 'base', got '$opencv'" >&2
    exit 2
    ;;
esac

python3 -m venv --system-site-packages "$venv"
py="$venv/bin/python"
"$py" -m pip install --no-cache-dir --ignore-installed -r "$req_dir/base.txt"

if [ "$opencv" = base ]; then
  "$py" -m pip uninstall -y opencv-contrib-python
fi

# ROS's Python path (rclpy, cv_bridge) for the checks below; setup.bash is not
# nounset-safe.
set +u
for setup in "/opt/ros/${ROS_DISTRO:-}/setup.bash" "/opt/ros/${ROS_DISTRO:-}/install/setup.bash"; do
  if [ -f "$setup" ]; then
    # shellcheck disable=SC1090  # the path depends on the base image
    source "$setup"
    break
  fi
done
set -u

# Some L4T ROS images lack cv_bridge: fall back to the pinned pure-Python port.
if ! "$py" -c 'import cv_bridge' 2>/dev/null; then
  pin=$(grep -E '^cv-bridge==' "$req_dir/ros-pypi.txt")
  echo "install-python-deps: ROS cv_bridge missing; installing $pin"
  "$py" -m pip install --no-cache-dir "$pin"
fi

# Fail the build now, not on the device, if the stack cannot import its parts.
"$py" - "$venv" "$opencv" <<'PY'
import sys

import cv2
import mediapipe  # noqa: F401
import numpy

venv, opencv = sys.argv[1], sys.argv[2]
info = cv2.getBuildInformation()
gstreamer = any('GStreamer' in line and 'YES' in line for line in info.splitlines())
in_venv = cv2.__file__.startswith(venv)
print(f'cv2 {cv2.__version__} from {cv2.__file__} (GStreamer: {gstreamer}); '
      f'numpy {numpy.__version__}')
if opencv == 'pip' and not in_venv:
    sys.exit('cv2 must come from the venv (mediapipe\'s opencv-contrib-python)')
if opencv == 'base' and (in_venv or not gstreamer):
    sys.exit('OPENCV=base needs the base image\'s OpenCV with GStreamer')
PY
