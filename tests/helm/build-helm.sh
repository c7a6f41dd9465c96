#!/usr/bin/env bash
# Build the `helm` binary the chart tests use, from the Go module proxy
# (helm.sh/helm/v3 has no replace directives, so `go install` works), with
# its version string and default Kubernetes version set as helm's own Makefile
# does (client-go v0.Y.Z -> 1.Y; without it `helm template` assumes v1.20). Cached outside the repository, keyed by version:
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/helm-vX.Y.Z/bin/helm
# A second run returns at once; a lock serialises concurrent runs.
# Usage: tests/helm/build-helm.sh   (prints the path of the binary on stdout)
set -euo pipefail

version="v3.22.0"
kube_minor="37"  # helm v3.22.0 requires k8s.io/client-go v0.37.0
build_id="$version kube-1.$kube_minor"
cache_root="${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}"
out_dir="$cache_root/helm-$version"
binary="$out_dir/bin/helm"
go_cmd="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

if [[ -x "$binary" && "$(cat "$out_dir/.complete" 2>/dev/null)" == "$build_id" ]]; then
    echo "$binary"
    exit 0
fi
mkdir -p "$out_dir/bin"
exec 9>"$out_dir.lock"
flock 9
if [[ "$(cat "$out_dir/.complete" 2>/dev/null)" != "$build_id" ]]; then
    echo "building helm $version (first run on this machine, about 2-4 minutes)" >&2
    GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN="$out_dir/bin" \
        "$go_cmd" install -trimpath \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kube_minor \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kube_minor" \
        "helm.sh/helm/v3/cmd/helm@$version" >&2
    echo "$build_id" > "$out_dir/.complete"
fi
echo "$binary"
