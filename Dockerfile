# livestream-exporter in a container. Build: docker build -t livestream-exporter .
#   docker run -p 9877:9877 livestream-exporter        # no config mounted: the demo (--demo)
#   docker run -p 9877:9877 -v "$PWD/config.yaml:/etc/livestream-exporter/config.yaml:ro" \
#     -e GCORE_API_KEY livestream-exporter             # your config
# Counters and credit ledgers are kept in /var/lib/livestream-exporter (a volume).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python -m venv /opt/livestream-exporter && /opt/livestream-exporter/bin/pip install --no-cache-dir .

FROM python:3.12-slim
COPY --from=build /opt/livestream-exporter /opt/livestream-exporter
COPY docker/entrypoint.sh /usr/local/bin/livestream-exporter-entrypoint
# Group and user 10001 both exist, so `USER 10001:10001` runs with a named group.
RUN groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/livestream-exporter exporter \
    && mkdir -p /var/lib/livestream-exporter /etc/livestream-exporter \
    && chown exporter:exporter /var/lib/livestream-exporter
# XDG_STATE_HOME makes /var/lib/livestream-exporter the default state_dir.
ENV PATH=/opt/livestream-exporter/bin:$PATH \
    XDG_STATE_HOME=/var/lib \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/livestream-exporter
VOLUME /var/lib/livestream-exporter
EXPOSE 9877
# The probe uses the exporter's own --web.listen-address and --web.config.file (TLS, basic auth):
# any HTTP answer from /-/healthy, 401 included, is healthy (exporter/probe.py).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["livestream-exporter-entrypoint", "--health-probe"]
ENTRYPOINT ["livestream-exporter-entrypoint"]
