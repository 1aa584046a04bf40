#!/bin/sh
# The container's entry point: run with the config mounted at /etc/livestream-exporter/config.yaml,
# or with the built-in demo when there is none. Arguments are passed on to livestream-exporter;
# when they (or $LIVESTREAM_EXPORTER_CONFIG) already say which config to use, they are used as-is.
#
# `livestream-exporter-entrypoint --health-probe` is the HEALTHCHECK: it runs
# `livestream-exporter --health-probe` with the arguments the exporter was started with (kept in
# $ARGS_FILE), so the probe finds the same --web.listen-address and --web.config.file.
set -eu
CONFIG=/etc/livestream-exporter/config.yaml
ARGS_FILE="${TMPDIR:-/tmp}/livestream-exporter.args"

if [ "${1:-}" = "--health-probe" ]; then
  if [ -f "$ARGS_FILE" ]; then
    xargs -0 -a "$ARGS_FILE" livestream-exporter --health-probe || exit 1
    exit 0
  fi
  exec livestream-exporter --health-probe
fi
if [ "$#" -gt 0 ]; then
  printf '%s\0' "$@" >"$ARGS_FILE" 2>/dev/null || true
else
  : >"$ARGS_FILE" 2>/dev/null || true
fi

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
