#!/usr/bin/env bash
# Builds the Debian package of the NVR from the release binaries (run `cargo build --release` first):
#   bash scripts/package.sh [OUT_DIR]        -> OUT_DIR/nvr_<version>_<arch>.deb (default target/deb)
# The tree is staged by hand and packed with `dpkg-deb --build` (decision 63): the binaries in
# /usr/lib/nvr, the systemd unit, an example config in /etc/nvr (a conffile) and the docs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/deb}
rel=target/release
for b in supervisor worker nvr-preview; do
  [ -x "$rel/$b" ] || { echo "package: $rel/$b is missing; run cargo build --release" >&2; exit 1; }
done
# "supervisor 0.1.0 (commit abc)" -> 0.1.0
version=$("$rel/supervisor" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/nvr_${version}_${arch}"

for b in supervisor worker nvr-preview; do
  install -D -m0755 "$rel/$b" "$root/usr/lib/nvr/$b"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/lib/nvr/$b"
done
install -D -m0644 deploy/nvr.service "$root/lib/systemd/system/nvr.service"
install -D -m0644 deploy/cameras.example.json "$root/etc/nvr/cameras.json"
doc="$root/usr/share/doc/nvr"
install -D -m0644 README.md "$doc/README.md"
install -D -m0644 docs/config.md "$doc/config.md"
install -D -m0644 deploy/cameras.example.json "$doc/examples/cameras.json"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: nvr

Files: *
Copyright: 2025-2026 The nvr authors
License: MIT or Apache-2.0
 On Debian systems the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
 The MIT license: Permission is hereby granted, free of charge, to any person obtaining a copy of
 this software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions: The above copyright notice
 and this permission notice shall be included in all copies or substantial portions of the
 Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
COPYRIGHT
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'nvr (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- nvr maintainers <nvr@example.org>  %s\n' \
  "$version" "$("$rel/supervisor" --version | sed 's/.*commit \(.*\))/\1/')" "$date" \
  | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Depends: the packages that hold the shared libraries the binaries load.
# Only the libraries the binaries name themselves (NEEDED), not what those pull in; each by the
# path ldd gives and by its real path: dpkg knows one of them, /usr-merged or not.
mapfile -t libs < <(for b in "$root"/usr/lib/nvr/*; do
    needed=$(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    ldd "$b" | awk -v n="$needed" 'BEGIN{split(n, a, "\n"); for (i in a) want[a[i]]=1} $2 == "=>" && ($1 in want) {print $3}'
  done | while read -r l; do echo "$l"; readlink -f "$l"; done | sort -u)
depends=$( (dpkg -S "${libs[@]}" 2>/dev/null || true) | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
[ -n "$depends" ] || { echo "package: could not find the packages of the shared libraries" >&2; exit 1; }
mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CONTROL
Package: nvr
Version: $version
Architecture: $arch
Maintainer: nvr maintainers <nvr@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: video
Priority: optional
Description: light, crash-proof network video recorder
 A supervisor process starts one crash-isolated worker process per IP camera
 (RTSP, H.264/H.265), records motion clips without transcoding, keeps a
 recordings index and serves a web UI and HTTP API. Runs as the systemd
 service nvr.service (Type=notify, watchdog, dynamic user).
CONTROL
echo /etc/nvr/cameras.json >"$root/DEBIAN/conffiles"
find "$root" -type d -exec chmod 0755 {} +
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out/nvr_${version}_${arch}.deb"
