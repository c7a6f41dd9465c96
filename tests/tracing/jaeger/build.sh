#!/usr/bin/env bash
# Build Jaeger's all-in-one, the trace receiver of the tracing tests
# (tests/integration/test_tracing.py): its OTLP/HTTP receiver, an in-memory
# store and the query HTTP API, from github.com/jaegertracing/jaeger on the Go
# module proxy, through the wrapper module in this directory (go.mod / go.sum /
# tools.go: Jaeger's go.mod has a replace directive, so `go install ...@v`
# refuses it). Cached outside the repository, keyed by version:
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/jaeger-vX.Y.Z/bin/jaeger-all-in-one
# A second run returns at once; a lock serialises concurrent runs.
# Usage: tests/tracing/jaeger/build.sh   (prints the path of the binary on stdout)
# Environment: GO (go command), BASELINR_TEST_CACHE (cache root), BUILD_JOBS (go build -p).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/jaegertracing/jaeger" { print $3; exit }' "$here/go.mod")"
if [[ -z "$version" ]]; then
    echo "build.sh: cannot read Jaeger's version from $here/go.mod" >&2
    exit 1
fi
cache_root="${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}"
out_dir="$cache_root/jaeger-$version"
binary="$out_dir/bin/jaeger-all-in-one"
go_cmd="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [[ -x "$binary" && "$(cat "$out_dir/.complete" 2>/dev/null)" == "$version" ]]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$cache_root"
exec 9>"$out_dir.lock"
flock 9
if [[ -x "$binary" && "$(cat "$out_dir/.complete" 2>/dev/null)" == "$version" ]]; then
    echo "$binary"
    exit 0
fi
echo "build.sh: building Jaeger all-in-one $version (first run on this machine, see tests/tracing/README.md)" >&2
start=$(date +%s)
tmp_dir="$(mktemp -d "$cache_root/.build-jaeger-$version.XXXXXX")"
chmod 755 "$tmp_dir"
trap 'rm -rf "$tmp_dir"' EXIT
(
    cd "$here"
    GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 \
        "$go_cmd" build -p "${BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}" -trimpath \
        -ldflags "-s -w" -o "$tmp_dir/bin/jaeger-all-in-one" \
        github.com/jaegertracing/jaeger/cmd/all-in-one
)
end=$(date +%s)
echo "jaeger $version, go $("$go_cmd" env GOVERSION), built in $((end - start))s" > "$tmp_dir/BUILD-INFO"
echo "$version" > "$tmp_dir/.complete"
rm -rf "$out_dir"
mv "$tmp_dir" "$out_dir"
trap - EXIT
echo "build.sh: built Jaeger $version in $((end - start))s" >&2
echo "$binary"
