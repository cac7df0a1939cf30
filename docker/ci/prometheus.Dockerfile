# A stand-in for prom/prometheus, for the container tests (no registry here): Debian
# bookworm's Prometheus (2.42) on the local base image, laid out as the upstream image is
# (run as nobody, data in /prometheus, `prometheus` on PATH for docker/prometheus/entrypoint.sh)
# and with wget for the health check in docker-compose.yml, as busybox gives upstream.
ARG ROOT=newsletter-ci/bookworm:minbase
FROM ${ROOT}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /prometheus \
 && chown nobody:nogroup /prometheus
WORKDIR /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
