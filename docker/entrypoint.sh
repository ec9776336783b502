#!/usr/bin/env bash
# Container entry point: source ROS and the pianist install, then run
#   ros2 launch pianist_ros bringup.launch.py <args from the environment>
#
# Environment (all optional):
#   SOURCE        camera source: synthetic, /dev/videoN, file, rtsp/http URL, GStreamer pipeline
#   NAMESPACE     namespace for every node and topic
#   PARAMS_FILE   parameter file (default: the installed config/pianist.yaml)
#   USE_RECORDER  true|false   start image_recorder (launch default: false)
#   USE_OTA       true|false   start ota_manager (launch default: false)
#   USE_DETECTOR  true|false   start hand_detector (launch default: true)
#   USE_TELEMETRY true|false   start telemetry_bridge (launch default: true)
#   LOG_LEVEL     debug|info|warn|error|fatal
#   ROS_SETUP     ROS setup.bash (default: /opt/ros/$ROS_DISTRO[/install]/setup.bash)
#   PIANIST_SETUP pianist install setup.bash (default: /opt/pianist/install/setup.bash)
#   PIANIST_DRY_RUN=1  print the command instead of running it (tests)
# With arguments, runs them instead (docker run IMAGE bash) after sourcing.
set -euo pipefail

die() {
  echo "entrypoint: $*" >&2
  exit 2
}

# journald: one plain line per message with level, node and message.
export RCUTILS_COLORIZED_OUTPUT="${RCUTILS_COLORIZED_OUTPUT:-0}"
# (A literal default inside ${VAR:-...} would end at the first '}' of the format.)
journal_format='[{severity}] [{name}]: {message}'
export RCUTILS_CONSOLE_OUTPUT_FORMAT="${RCUTILS_CONSOLE_OUTPUT_FORMAT:-$journal_format}"
export PYTHONUNBUFFERED=1

ros_setup="${ROS_SETUP:-}"
if [ -z "$ros_setup" ]; then
  for candidate in "/opt/ros/${ROS_DISTRO:-}/setup.bash" "/opt/ros/${ROS_DISTRO:-}/install/setup.bash"; do
    if [ -f "$candidate" ]; then
      ros_setup=$candidate
      break
    fi
  done
fi
[ -n "$ros_setup" ] && [ -f "$ros_setup" ] || die "ROS setup.bash not found (set ROS_SETUP)"
pianist_setup="${PIANIST_SETUP:-/opt/pianist/install/setup.bash}"
[ -f "$pianist_setup" ] || die "pianist install not found: $pianist_setup"

# The setup scripts are not nounset-safe.
set +u
# shellcheck disable=SC1090  # paths depend on the base image
source "$ros_setup"
# shellcheck disable=SC1090
source "$pianist_setup"
set -u

if [ "$#" -gt 0 ]; then
  exec "$@"
fi

bool() {
  # bool NAME VALUE: accept the spellings people type, hand launch 'true' / 'false'.
  case "${2,,}" in
    1 | true | yes | on) echo true ;;
    0 | false | no | off) echo false ;;
    *) die "$1 must be true or false, got '$2'" ;;
  esac
}

args=(pianist_ros bringup.launch.py)
[ -n "${SOURCE:-}" ] && args+=("source:=${SOURCE}")
[ -n "${NAMESPACE:-}" ] && args+=("namespace:=${NAMESPACE}")
if [ -n "${PARAMS_FILE:-}" ]; then
  [ -f "$PARAMS_FILE" ] || die "PARAMS_FILE not found: $PARAMS_FILE"
  args+=("params_file:=${PARAMS_FILE}")
fi
for pair in USE_RECORDER:use_recorder USE_OTA:use_ota USE_DETECTOR:use_detector \
  USE_TELEMETRY:use_telemetry; do
  var=${pair%%:*}
  value=${!var:-}
  if [ -n "$value" ]; then
    flag=$(bool "$var" "$value") || exit 2
    args+=("${pair#*:}:=${flag}")
  fi
done
if [ -n "${LOG_LEVEL:-}" ]; then
  case "$LOG_LEVEL" in
    debug | info | warn | error | fatal) args+=("log_level:=${LOG_LEVEL}") ;;
    *) die "LOG_LEVEL must be debug, info, warn, error or fatal, got '$LOG_LEVEL'" ;;
  esac
fi

if [ "${PIANIST_DRY_RUN:-0}" = 1 ]; then
  printf '%s\n' ros2 launch "${args[@]}"
  exit 0
fi
exec ros2 launch "${args[@]}"
