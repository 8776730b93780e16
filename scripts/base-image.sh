#!/usr/bin/env bash
# Makes the local base image `localhost/nvr-base:bookworm` for the container test (no image
# registry is reachable from CI): `debootstrap --variant=minbase bookworm` + `podman import`.
# Does nothing if the image exists. Users build on the official debian:bookworm-slim instead.
set -euo pipefail
image=localhost/nvr-base:bookworm
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi
root=$(mktemp -d /var/tmp/nvr-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
# Like the slim image: no apt caches, and the security updates as a source.
echo "deb http://deb.debian.org/debian-security bookworm-security main" >>"$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "$image"
