#!/usr/bin/env bash
# Build the `helm` binary the chart tests use, from the Go module proxy
# (helm.sh/helm/v3 has no replace directives, so `go install` works), with
# its version string set. Cached outside the repository, keyed by version:
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/helm-vX.Y.Z/bin/helm
# A second run returns at once; a lock serialises concurrent runs.
# Usage: tests/helm/build-helm.sh   (prints the path of the binary on stdout)
set -euo pipefail

version="v3.22.0"
cache_root="${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}"
out_dir="$cache_root/helm-$version"
binary="$out_dir/bin/helm"
go_cmd="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [[ -x "$binary" && -f "$out_dir/.complete" ]]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$out_dir/bin"
exec 9>"$out_dir.lock"
flock 9
if [[ ! -f "$out_dir/.complete" ]]; then
    echo "building helm $version (first run on this machine, about 2-4 minutes)" >&2
    GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$out_dir/bin" \
        "$go_cmd" install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
        "helm.sh/helm/v3/cmd/helm@$version" >&2
    touch "$out_dir/.complete"
fi
echo "$binary"
