#!/usr/bin/env bash
# Base images without a registry, for the container tests:
#   newsletter-ci/bookworm:minbase  Debian bookworm from debootstrap, imported (the root file
#                                   system is kept as a tarball in the cache, so it is made once)
#   newsletter-ci/python:3.11       Python 3.11 on it (docker/ci/python.Dockerfile)
#   newsletter-ci/postgres:15       PostgreSQL 15 on it (docker/ci/postgres/)
#   newsletter-ci/prometheus:2      Debian's Prometheus on it (docker/ci/prometheus.Dockerfile)
# Needs root, a running daemon (DOCKER_HOST) and the Debian mirror. The builds use the host's
# network; docker's layer cache makes a second run take seconds.
#
#   docker/ci/base-images.sh CACHE_DIR
set -euo pipefail

cache="${1:?usage: base-images.sh CACHE_DIR}"
here="$(cd "$(dirname "$0")" && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root_image=newsletter-ci/bookworm:minbase
rootfs_tar="$cache/bookworm-minbase.tar"

log() { printf '[base-images] %s\n' "$*" >&2; }

make_rootfs_tar() {
    local rootfs="$cache/rootfs.tmp"
    rm -rf "$rootfs"
    log "debootstrap --variant=minbase bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
    # Package caches and lists are rebuilt by every apt-get update; keep them out of the image.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$rootfs_tar.tmp" .
    mv "$rootfs_tar.tmp" "$rootfs_tar"
    rm -rf "$rootfs"
}

if ! docker image inspect "$root_image" >/dev/null 2>&1; then
    [ -s "$rootfs_tar" ] || make_rootfs_tar
    log "importing $rootfs_tar as $root_image"
    docker import --change 'CMD ["/bin/bash"]' "$rootfs_tar" "$root_image" >/dev/null
fi

build() {  # build TAG DOCKER_BUILD_ARGS...: quiet unless it fails
    local tag="$1"
    shift
    log "building $tag"
    docker build --network host --build-arg "ROOT=$root_image" -t "$tag" "$@" \
        >"$cache/build.log" 2>&1 || { tail -30 "$cache/build.log" >&2; exit 1; }
}
build newsletter-ci/python:3.11 -f "$here/python.Dockerfile" "$here"
build newsletter-ci/postgres:15 "$here/postgres"
build newsletter-ci/prometheus:2 -f "$here/prometheus.Dockerfile" "$here"
