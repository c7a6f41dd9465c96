#!/usr/bin/env bash
# Build s3s-fs, the S3 server of the object-storage backup tests
# (tests/support/s3server.py): the s3s project's S3 implementation over a local
# directory, from crates.io (Apache-2.0). 0.14.1 is the newest release that the
# Rust toolchain here (1.95; 0.17 needs 1.96) builds. Cached outside the
# repository, keyed by version:
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/s3s-fs-<version>/bin/s3s-fs
# A second run returns at once; a lock serialises concurrent runs.
# Usage: tests/s3/build-s3s-fs.sh   (prints the path of the binary on stdout)
set -euo pipefail

version="0.14.1"
cache_root="${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}"
out_dir="$cache_root/s3s-fs-$version"
binary="$out_dir/bin/s3s-fs"
cargo_cmd="${CARGO:-$(command -v cargo || echo "$HOME/.cargo/bin/cargo")}"

if [[ -x "$binary" && "$(cat "$out_dir/.complete" 2>/dev/null)" == "$version" ]]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$out_dir"
exec 9>"$out_dir.lock"
flock 9
if [[ "$(cat "$out_dir/.complete" 2>/dev/null)" != "$version" ]]; then
    echo "building s3s-fs $version (first run on this machine, about 3 minutes)" >&2
    target="$(mktemp -d "$out_dir.target.XXXXXX")"
    trap 'rm -rf "$target"' EXIT
    CARGO_TARGET_DIR="$target" nice -n 10 "$cargo_cmd" install --locked --quiet "s3s-fs@$version" --features binary \
        --root "$out_dir" >&2
    echo "$version" > "$out_dir/.complete"
fi
echo "$binary"
