#!/usr/bin/env bash
# Build the binaries of the end-to-end test control plane from the Go module
# proxy: kube-apiserver, kube-controller-manager and kubectl from the
# k8s.io/kubernetes module, and etcd from go.etcd.io/etcd/server/v3, all
# through the wrapper module in this directory (go.mod / go.sum / tools.go).
# With --node: kubelet and kube-scheduler of the real node tier (tests/node),
# from the same k8s.io/kubernetes module, in a cache directory of their own.
#
# The binaries are cached outside the repository, keyed by version:
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/k8s-vX.Y.Z-etcd-vA.B.C/bin
#   ${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}/k8s-vX.Y.Z-node/bin (--node)
# A second run finds them and returns at once. A lock file serialises
# concurrent runs, so only one of them builds.
#
# Usage: tests/e2e/controlplane/build.sh [--node] [--print-dir]
#   Progress goes to stderr; the bin directory is the only line on stdout.
#   --print-dir prints the bin directory without building anything.
# Environment:
#   GO                  go command to use (default: go on PATH, else /usr/local/go/bin/go)
#   BASELINR_TEST_CACHE cache root (see above)
#   BUILD_JOBS          value for `go build -p` (default: number of CPUs)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

mod_version() {
    # Version of a module required in go.mod, e.g. `mod_version k8s.io/kubernetes`.
    awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}

kube_version="$(mod_version k8s.io/kubernetes)"
etcd_version="$(mod_version go.etcd.io/etcd/server/v3)"
if [[ -z "$kube_version" || -z "$etcd_version" ]]; then
    echo "build.sh: cannot read versions from $here/go.mod" >&2
    exit 1
fi

node=0
print_dir=0
for arg in "$@"; do
    case "$arg" in
        --node) node=1 ;;
        --print-dir) print_dir=1 ;;
        *) echo "build.sh: unknown argument $arg (usage: build.sh [--node] [--print-dir])" >&2; exit 2 ;;
    esac
done

cache_root="${BASELINR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/baselinr-test}"
if [[ "$node" == 1 ]]; then
    key="k8s-${kube_version}-node"
    binaries=(kubelet kube-scheduler)
else
    key="k8s-${kube_version}-etcd-${etcd_version}"
    binaries=(kube-apiserver kube-controller-manager kubectl etcd)
fi
out_dir="$cache_root/$key"
bin_dir="$out_dir/bin"

is_built() {
    [[ -f "$out_dir/.complete" ]] || return 1
    local b
    for b in "${binaries[@]}"; do
        [[ -x "$bin_dir/$b" ]] || return 1
    done
}

if [[ "$print_dir" == 1 ]]; then
    echo "$bin_dir"
    exit 0
fi

if is_built; then
    echo "$bin_dir"
    exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/$key.lock"
if ! flock -n 9; then
    echo "build.sh: another build of $key is running; waiting for it" >&2
    flock 9
fi
# Another process may have finished the build while we waited for the lock.
if is_built; then
    echo "$bin_dir"
    exit 0
fi

go_cmd="${GO:-}"
if [[ -z "$go_cmd" ]]; then
    if command -v go >/dev/null 2>&1; then
        go_cmd="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then
        go_cmd=/usr/local/go/bin/go
    else
        echo "build.sh: no Go toolchain found (need Go >= 1.25; set GO=/path/to/go)" >&2
        exit 1
    fi
fi

kube_minor="$(echo "$kube_version" | cut -d. -f2)"

start=$(date +%s)
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export CGO_ENABLED=0

# The release date of the module version stands in for the build date, so the
# binaries do not depend on when they were built.
(cd "$here" && "$go_cmd" mod download k8s.io/kubernetes)
build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' \
    "$("$go_cmd" env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/${kube_version}.info" 2>/dev/null || true)"
build_date="${build_date:-1970-01-01T00:00:00Z}"

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${kube_version}"
    ldflags+=" -X ${pkg}.gitMajor=1"
    ldflags+=" -X ${pkg}.gitMinor=${kube_minor}"
    ldflags+=" -X ${pkg}.gitCommit=module-${kube_version}"
    ldflags+=" -X ${pkg}.gitTreeState=clean"
    ldflags+=" -X ${pkg}.buildDate=${build_date}"
done

jobs="${BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

tmp_dir="$(mktemp -d "$cache_root/.build-$key.XXXXXX")"
chmod 755 "$tmp_dir"
trap 'rm -rf "$tmp_dir"' EXIT

echo "build.sh: building $key with $("$go_cmd" version) (-p $jobs) into $out_dir" >&2
echo "build.sh: this takes a while on the first run (see tests/e2e/README.md)" >&2
(
    cd "$here"
    if [[ "$node" == 1 ]]; then
        "$go_cmd" build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$tmp_dir/bin/" \
            k8s.io/kubernetes/cmd/kubelet \
            k8s.io/kubernetes/cmd/kube-scheduler
        exit 0
    fi
    "$go_cmd" build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$tmp_dir/bin/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubectl
    # etcd sets its own version variables; build it in its own invocation.
    "$go_cmd" build -p "$jobs" -trimpath -ldflags "-s -w" -o "$tmp_dir/bin/etcd" \
        go.etcd.io/etcd/server/v3
)
end=$(date +%s)

cat >"$tmp_dir/BUILD-INFO" <<EOF
kubernetes $kube_version
etcd $etcd_version
go $("$go_cmd" env GOVERSION)
built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((end - start))s
EOF
touch "$tmp_dir/.complete"
rm -rf "$out_dir"
mv "$tmp_dir" "$out_dir"
trap - EXIT
echo "build.sh: built $key in $((end - start))s" >&2
echo "$bin_dir"
