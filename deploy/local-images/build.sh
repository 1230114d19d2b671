#!/bin/sh
# Builds stand-ins for the three images docker-compose.yml takes from Docker Hub (python:3.11-slim, postgres:16,
# redis:7) from Debian 12's packages, for a machine with a Docker engine that cannot reach Docker Hub but can reach
# Debian's mirror (and PyPI, for the app's own image). Use them with the override file beside this script:
#   deploy/local-images/build.sh
#   docker-compose -f docker-compose.yml -f deploy/local-images/docker-compose.local-images.yml up --scale worker=3
# Needs root (debootstrap). The base layer is a minimal Debian 12 made by debootstrap and imported as
# local/bookworm:minbase; the CA certificates this host trusts beyond Debian's (a proxy's, say) are copied in, so pip
# inside the images trusts what pip on this host trusts.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if ! docker image inspect local/bookworm:minbase >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    ROOTFS=$(mktemp -d)
    trap 'rm -rf "$ROOTFS"' EXIT
    debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null
    echo "deb $MIRROR bookworm main" > "$ROOTFS/etc/apt/sources.list"
    rm -rf "$ROOTFS/var/cache/apt/archives/"*.deb
    tar -C "$ROOTFS" -c . | docker import - local/bookworm:minbase >/dev/null
fi
CONTEXT=$(mktemp -d)
cp "$HERE"/*.Dockerfile "$HERE"/*-entrypoint.sh "$CONTEXT"/
mkdir "$CONTEXT/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$CONTEXT/ca-certificates/" 2>/dev/null || true
docker build -q -t local/python:3.11-bookworm -f "$CONTEXT/python.Dockerfile" "$CONTEXT"
docker build -q -t local/postgres:15-bookworm -f "$CONTEXT/postgres.Dockerfile" "$CONTEXT"
docker build -q -t local/redis:7-bookworm -f "$CONTEXT/redis.Dockerfile" "$CONTEXT"
# Not on Docker Hub in an official image: built here for deploy/docker-compose.pgbouncer.yml on every machine.
docker build -q -t local/pgbouncer:1.18-bookworm -f "$CONTEXT/pgbouncer.Dockerfile" "$CONTEXT"
rm -rf "$CONTEXT"
