# The Python runtime the container tests build on, in place of python:3.11-slim-bookworm
# (no registry here): Debian bookworm's Python 3.11 with venv, time zone data and CA roots.
ARG ROOT=newsletter-ci/bookworm:minbase
FROM ${ROOT}
ENV LANG=C.UTF-8
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv tzdata ca-certificates netbase \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
CMD ["python3"]
