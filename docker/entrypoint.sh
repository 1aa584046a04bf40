#!/bin/sh
# The container's entry point: run with the config mounted at /etc/livestream-exporter/config.yaml,
# or with the built-in demo when there is none. Arguments are passed on to livestream-exporter;
# when they (or $LIVESTREAM_EXPORTER_CONFIG) already say which config to use, they are used as-is.
set -eu
CONFIG=/etc/livestream-exporter/config.yaml

for arg in "$@"; do
  case "$arg" in
    --config|--config=*|--demo) exec livestream-exporter "$@" ;;
  esac
done
if [ -n "${LIVESTREAM_EXPORTER_CONFIG:-}" ]; then
  exec livestream-exporter "$@"
fi
if [ -f "$CONFIG" ]; then
  exec livestream-exporter --config "$CONFIG" "$@"
fi
echo "no config at $CONFIG: starting the demo (built-in vendor simulators)" >&2
exec livestream-exporter --demo "$@"
