#!/usr/bin/env bash
# Prints the folder holding etcd, kube-apiserver, kube-controller-manager and kubectl, building
# them from the Go module proxy on first use. Progress goes to stderr; only the folder to stdout.
#
#   KUBEBUILDER_ASSETS  a folder with etcd, kube-apiserver and kube-controller-manager (envtest
#                       layout; kubectl too if present): used as is, nothing is built.
#   REGCRED_CACHE_DIR   where built binaries are cached (default ~/.cache/regcred-operator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_module="$here/controlplane/kubernetes"
etcd_module="$here/controlplane/etcd"

# The pinned versions are read from the wrapper modules, so go.mod is the one place to change.
k8s_version="$(awk '/^require k8s.io\/kubernetes /{print $3}' "$k8s_module/go.mod")"
etcd_version="$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3"{print $3}' "$etcd_module/go.mod")"

log() { printf '[provision] %s\n' "$*" >&2; }
have_all() { local d="$1"; shift; for b in "$@"; do [ -x "$d/$b" ] || return 1; done; }

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if have_all "$KUBEBUILDER_ASSETS" etcd kube-apiserver kube-controller-manager; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of etcd, kube-apiserver, kube-controller-manager; building instead"
fi

cache_root="${REGCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/regcred-operator}"
out="$cache_root/kubernetes-$k8s_version-etcd-$etcd_version"
binaries=(etcd kube-apiserver kube-controller-manager kubectl)

if have_all "$out" "${binaries[@]}"; then
  echo "$out"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
[provision] error: no control-plane binaries and no Go toolchain.
  Either install Go (1.26 or newer, https://go.dev/doc/install) so this script can build
  kubernetes $k8s_version and etcd $etcd_version from the Go module proxy, or point
  KUBEBUILDER_ASSETS at a folder holding etcd, kube-apiserver and kube-controller-manager
  (for example the output of: setup-envtest use -p path).
MSG
  exit 1
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
log "waiting for the build lock $cache_root/.lock"
flock 9
# Another run may have finished the build while we waited.
if have_all "$out" "${binaries[@]}"; then
  echo "$out"
  exit 0
fi

staging="$(mktemp -d "$cache_root/.build-XXXXXX")"
trap 'rm -rf "$staging"' EXIT
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"
start=$SECONDS

log "building etcd $etcd_version (1 of 2; a few minutes on a cold cache)"
(cd "$etcd_module" && go build -trimpath -o "$staging/etcd" go.etcd.io/etcd/server/v3)
log "etcd built in $((SECONDS - start)) s"

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
log "building kube-apiserver, kube-controller-manager and kubectl $k8s_version (2 of 2; 10+ minutes on a cold cache, 2 cores)"
(cd "$k8s_module" && go build -trimpath -ldflags "$ldflags" -o "$staging/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl)
log "kubernetes built in $((SECONDS - start)) s in all"

rm -rf "$out"
mv "$staging" "$out"
trap - EXIT
"$out/kube-apiserver" --version >&2
echo "$out"
