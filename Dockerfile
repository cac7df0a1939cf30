# The newsletter image: the package in a virtualenv on a slim Python, run as an unprivileged
# user. The content (newsletter.toml, items/, templates/) is not baked in: docker-compose.yml
# mounts the project folder read-only at /content, so editors publish with `git pull` on the
# host (the package keeps its own copy of templates/, the defaults, as package data). Writable state lives in the database and in /data (dry-run output).
#
#   docker build -t newsletter .
#   docker build --build-arg BASE=my/python:3.11 --build-arg PIP_OPTIONS=--no-index -t newsletter .
#
# BASE is any Debian-like image with Python 3.11+ as `python3` and its venv module. With
# PIP_OPTIONS=--no-index every dependency must already be in docker/wheelhouse/ as a wheel
# (this is how the container tests build without reaching a package index).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
ARG PIP_OPTIONS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY docker/wheelhouse/ /wheelhouse/
COPY pyproject.toml README.md LICENSE /src/
COPY newsletter/ /src/newsletter/
COPY templates/ /src/templates/
# One wheel for the package plus one per dependency (resolved from pyproject.toml), then a
# virtualenv installed from those wheels alone; pip itself is not needed at run time.
RUN python3 -m venv /opt/newsletter \
 && /opt/newsletter/bin/pip wheel $PIP_OPTIONS --find-links /wheelhouse --wheel-dir /wheels /src \
 && /opt/newsletter/bin/pip install --no-index --find-links /wheels newsletter \
 && /opt/newsletter/bin/pip uninstall --yes --quiet pip

FROM ${BASE}
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data \
        --shell /usr/sbin/nologin newsletter \
 && mkdir -p /content /data/outbox \
 && chown -R newsletter:newsletter /data
COPY --from=build /opt/newsletter /opt/newsletter
COPY docker/healthcheck.py /opt/newsletter/healthcheck.py
# /content is mounted read-only, so dry runs and previews default to the /data volume. The
# worker serves its /healthz on 127.0.0.1:8001, for the HEALTHCHECK below.
ENV PATH=/opt/newsletter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LANG=C.UTF-8 \
    NEWSLETTER_OUTBOX_DIR=/data/outbox \
    NEWSLETTER_WORKER_HEALTH_PORT=8001
# Fail the build, not the first send, when the base lacks time zone data or the entry point.
RUN python3 -c "import zoneinfo; zoneinfo.ZoneInfo('Europe/Berlin')" && newsletter --version
WORKDIR /content
USER newsletter
# web: GET /healthz answers 200; worker: its GET /healthz on 127.0.0.1:8001 (inside the
# container only) answers 200: the scheduler runs, the database answers, no send is stalled.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["python3", "/opt/newsletter/healthcheck.py"]
CMD ["newsletter", "worker"]
