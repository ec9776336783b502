#!/usr/bin/env bash
# Install and enable the pianist systemd unit. Idempotent: a second run changes nothing
# and says so; the site's /etc/pianist/pianist.env is created once and never overwritten.
#
#   scripts/install-service.sh [--docker | --venv] [--jetson] [--root DIR] [--no-enable]
#                              [--now] [--dry-run]
#
#   --docker     pianist.service: the stack in its container (default)
#   --venv       pianist-venv.service: pianist-bringup from /opt/pianist/venv, no Docker
#   --jetson     add the NVIDIA runtime drop-in (pianist.service.d/jetson.conf)
#   --root DIR   install below DIR instead of / (tests, image builds); enables offline
#                with `systemctl --root`, never touches the running systemd
#   --no-enable  copy files only
#   --now        also (re)start the service (not with --root)
#   --dry-run    print what would be done, change nothing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
mode=docker
jetson=0
root=
enable=1
now=0
dry_run=0
uid=${PIANIST_UID:-10001}

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  echo "install-service: $*" >&2
  exit 2
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --docker) mode=docker ;;
    --venv) mode=venv ;;
    --jetson) jetson=1 ;;
    --root)
      [ "$#" -ge 2 ] || die "--root needs a directory"
      root=$2
      shift
      ;;
    --root=*) root=${1#--root=} ;;
    --no-enable) enable=0 ;;
    --now) now=1 ;;
    --dry-run) dry_run=1 ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

if [ -n "$root" ]; then
  [ -d "$root" ] || die "--root directory does not exist: $root"
  root=$(cd "$root" && pwd)
  [ "$now" = 0 ] || die "--now cannot start a service inside --root"
fi
[ "$mode" = docker ] || [ "$jetson" = 0 ] || die "--jetson applies to the Docker unit only"
if [ "$dry_run" = 0 ] && [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (or with sudo), or use --root DIR / --dry-run"
fi

if [ "$mode" = docker ]; then
  unit=pianist.service
else
  unit=pianist-venv.service
fi
unit_dir=/etc/systemd/system
changed=0

say() {
  echo "install-service: $*"
}

run() {
  if [ "$dry_run" = 1 ]; then
    say "would run: $*"
  else
    "$@"
  fi
}

# put SRC DEST MODE: install a file only when its content or mode differs.
put() {
  local src=$1 dest="$root$2" perm=$3
  if [ -f "$dest" ] && cmp -s "$src" "$dest" \
    && [ "$(stat -c %a "$dest")" = "$perm" ]; then
    say "unchanged $2"
    return 0
  fi
  changed=1
  if [ "$dry_run" = 1 ]; then
    say "would install $2"
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  # Same-directory temp file + rename: a unit is never seen half-written.
  local tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cp "$src" "$tmp"
  chmod "$perm" "$tmp"
  mv -f "$tmp" "$dest"
  say "installed $2"
}

# dir PATH OWNER: create a data directory owned by the container / service user.
dir() {
  local dest="$root$1" owner=$2
  if [ -d "$dest" ] && [ "$(stat -c %u "$dest")" = "${owner%%:*}" ]; then
    say "unchanged $1/"
    return 0
  fi
  changed=1
  run mkdir -p "$dest"
  run chown "$owner" "$dest"
  [ "$dry_run" = 1 ] || say "created $1/ (owner $owner)"
}

put "$repo/docker/$unit" "$unit_dir/$unit" 644
if [ "$mode" = docker ]; then
  put "$repo/docker/sd_notify_relay.py" /usr/local/lib/pianist/sd-notify-relay 755
  if [ "$jetson" = 1 ]; then
    put "$repo/docker/pianist.service.d/jetson.conf" "$unit_dir/$unit.d/jetson.conf" 644
  fi
  owner="$uid:$uid"
else
  if [ -z "$root" ] && ! id pianist >/dev/null 2>&1; then
    run useradd --system --user-group --groups video --home-dir /var/lib/pianist \
      --shell /usr/sbin/nologin pianist
    changed=1
  fi
  # StateDirectory= creates and chowns these for the venv unit at start.
  owner=$(id -u pianist 2>/dev/null || echo 0):$(id -g pianist 2>/dev/null || echo 0)
fi
put "$repo/docs/deployment.md" /usr/local/share/doc/pianist/deployment.md 644
for d in /var/lib/pianist /var/lib/pianist/recordings /var/lib/pianist/ota; do
  dir "$d" "$owner"
done

env_file="$root/etc/pianist/pianist.env"
if [ -e "$env_file" ]; then
  say "kept /etc/pianist/pianist.env (site settings are never overwritten)"
else
  changed=1
  if [ "$dry_run" = 1 ]; then
    say "would create /etc/pianist/pianist.env"
  else
    mkdir -p "$(dirname "$env_file")"
    cat >"$env_file" <<'ENV'
# pianist site settings (read by pianist.service / pianist-venv.service).
# Docker unit: SOURCE NAMESPACE PARAMS_FILE LOG_LEVEL USE_RECORDER USE_OTA USE_DETECTOR
# USE_TELEMETRY ROS_DOMAIN_ID PIANIST_DEVICE_ID PIANIST_IMAGE PIANIST_CAMERA_DEVICE.
# venv unit: PIANIST_ARGS (pianist-bringup options, e.g. --source /dev/video0 --recorder).
#SOURCE=/dev/video0
#ROS_DOMAIN_ID=0
ENV
    say "created /etc/pianist/pianist.env"
  fi
fi

systemctl_cmd=(systemctl)
if [ -n "$root" ]; then
  systemctl_cmd+=("--root=$root")
elif [ "$changed" = 1 ]; then
  run systemctl daemon-reload
fi
if [ "$enable" = 1 ]; then
  # Two enabled units would start two stacks fighting over the camera.
  if [ "$unit" = pianist.service ]; then other=pianist-venv.service; else other=pianist.service; fi
  if "${systemctl_cmd[@]}" is-enabled --quiet "$other" 2>/dev/null; then
    run "${systemctl_cmd[@]}" disable "$other"
  fi
  if [ "$dry_run" = 0 ] && "${systemctl_cmd[@]}" is-enabled --quiet "$unit" 2>/dev/null; then
    say "$unit already enabled"
  else
    run "${systemctl_cmd[@]}" enable "$unit"
  fi
fi
if [ "$now" = 1 ]; then
  run systemctl restart "$unit"
fi
if [ "$changed" = 0 ]; then
  say "nothing to do: $unit is up to date"
fi
