#!/usr/bin/env bash
# Build the kstatus checker (main.go in this directory) with
# sigs.k8s.io/cli-utils/pkg/kstatus/status from the Go module proxy. Cached
# outside the repository, keyed by the checksum of this directory's sources:
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/kstatus-<sum>/bin/kstatus-check
# A second run returns at once; a lock serialises concurrent runs.
# Usage: tests/kstatus/build.sh   (prints the path of the binary on stdout)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
key="kstatus-$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)"
cache_root="${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}"
out_dir="$cache_root/$key"
binary="$out_dir/bin/kstatus-check"
go_cmd="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [[ -x "$binary" && -f "$out_dir/.complete" ]]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
flock 9
if [[ -x "$binary" && -f "$out_dir/.complete" ]]; then
    echo "$binary"
    exit 0
fi
echo "build.sh: building the kstatus checker (first run on this machine, under a minute)" >&2
tmp_dir="$(mktemp -d "$cache_root/.build-$key.XXXXXX")"
chmod 755 "$tmp_dir"
trap 'rm -rf "$tmp_dir"' EXIT
(cd "$here" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
    "$go_cmd" build -trimpath -ldflags "-s -w" -o "$tmp_dir/bin/kstatus-check" .)
touch "$tmp_dir/.complete"
rm -rf "$out_dir"
mv "$tmp_dir" "$out_dir"
trap - EXIT
echo "$binary"
