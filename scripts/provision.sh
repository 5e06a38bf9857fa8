#!/usr/bin/env bash
# Provisions everything the test suites and `npm run dev` run, built from the Go module proxy at
# pinned versions and cached outside the repository:
#
#   controlplane  etcd, kube-apiserver, kube-controller-manager, kubectl   (npm run dev, all suites)
#   helm          the helm CLI   (the integration suite's chart tests)
#   registry      the distribution registry, crane, an htpasswd (bcrypt) helper   (e2e)
#   node          the kubelet, containerd + its runc shim + ctr, a pause binary, and runc from the
#                 system's package manager (e2e; needs root)
#
#   bash scripts/provision.sh [controlplane|helm|registry|node|e2e|all]...    (default: all)
#
# Prints "<component>=<folder>" lines on stdout, progress on stderr (at least every 15 s while
# building, and the times at the end). Only what is missing is built; a warm run only checks
# files. Everything that cannot be built without root (runc, running the node) is checked first,
# so a machine that lacks it fails within seconds, naming the command to run.
#
#   KUBEBUILDER_ASSETS  a folder with etcd, kube-apiserver and kube-controller-manager (envtest
#                       layout; kubectl too if present): used for the control plane as is.
#   REGCRED_CACHE_DIR   where built binaries are cached (default ~/.cache/regcred-operator).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules="$here/controlplane"
started=$SECONDS

log() { printf '[provision] %s\n' "$*" >&2; }
fail() {
  printf '[provision] error: %s\n' "$1" >&2
  shift
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  exit 1
}
have_all() {
  local dir="$1"
  shift
  for binary in "$@"; do [ -x "$dir/$binary" ] || return 1; done
}

# --- what to provision ---------------------------------------------------------------------
want_controlplane=false want_helm=false want_registry=false want_node=false
[ $# -gt 0 ] || set -- all
for component in "$@"; do
  case "$component" in
    controlplane) want_controlplane=true ;;
    helm) want_helm=true ;;
    registry) want_registry=true ;;
    node) want_node=true ;;
    e2e) want_registry=true want_node=true ;;
    all) want_controlplane=true want_helm=true want_registry=true want_node=true ;;
    *) fail "unknown component '$component' (controlplane, helm, registry, node, e2e or all)" ;;
  esac
done

# --- pinned versions, read from the wrapper modules (go.mod is the one place to change) ------
require_version() { awk -v m="$2" '($1=="require" && $2==m){print $3} ($1==m && NF>=2 && $2 ~ /^v/){print $2}' "$1" | head -1; }
k8s_version="$(require_version "$modules/kubernetes/go.mod" k8s.io/kubernetes)"
etcd_version="$(require_version "$modules/etcd/go.mod" go.etcd.io/etcd/server/v3)"
helm_version="$(require_version "$modules/helm/go.mod" helm.sh/helm/v4)"
distribution_version="$(require_version "$modules/registry/go.mod" github.com/distribution/distribution/v3)"
crane_version="$(require_version "$modules/registry/go.mod" github.com/google/go-containerregistry)"
containerd_version="$(require_version "$modules/containerd/go.mod" github.com/containerd/containerd/v2)"
# The pause binary has no upstream version: its source is the key.
pause_version="src-$(cat "$modules/pause/go.mod" "$modules/pause/main.go" | sha256sum | cut -c1-12)"
htpasswd_version="src-$(cat "$modules/registry/htpasswd/main.go" | sha256sum | cut -c1-12)"

cache_root="${REGCRED_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/regcred-operator}"
controlplane_dir="$cache_root/kubernetes-$k8s_version-etcd-$etcd_version"
helm_dir="$cache_root/helm-$helm_version"
registry_dir="$cache_root/registry-distribution-$distribution_version-crane-$crane_version-htpasswd-$htpasswd_version"
kubelet_dir="$cache_root/kubelet-$k8s_version"
containerd_dir="$cache_root/containerd-$containerd_version"
pause_dir="$cache_root/pause-$pause_version"

controlplane_binaries=(etcd kube-apiserver kube-controller-manager kubectl)
registry_binaries=(registry crane htpasswd)
containerd_binaries=(containerd containerd-shim-runc-v2 ctr)

# --- what the machine must provide: checked before anything is built ------------------------
if $want_node; then
  [ "$(uname -s)" = Linux ] || fail "the e2e suite's node (kubelet + containerd) runs on Linux only."
  if [ "$(id -u)" -ne 0 ]; then
    runc_hint=()
    command -v runc >/dev/null 2>&1 ||
      runc_hint=("and runc, which it installs itself when run as root (or: sudo apt-get install -y --no-install-recommends runc)")
    fail "the e2e suite runs a real kubelet and containerd, which need root." \
      "Run the tests as root:  sudo env \"PATH=\$PATH\" npm test" \
      "${runc_hint[@]}" \
      "(npm run dev and the unit and integration suites need no root: npm run test:unit, npm run test:integration)"
  fi
  if ! command -v runc >/dev/null 2>&1; then
    # runc needs cgo and libseccomp: it comes from the system, not from the Go module proxy.
    command -v apt-get >/dev/null 2>&1 ||
      fail "runc is missing and there is no apt-get to install it: install your distribution's runc package."
    log "runc is missing: installing it with apt-get (apt-get update && apt-get install -y --no-install-recommends runc)"
    apt_log="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runc; } >"$apt_log" 2>&1; then
      tail -20 "$apt_log" >&2
      fail "installing runc failed (above); run: apt-get update && apt-get install -y --no-install-recommends runc"
    fi
    rm -f "$apt_log"
    log "installed $(runc --version | head -1)"
  fi
fi

# --- the control plane from KUBEBUILDER_ASSETS, if given ------------------------------------
if $want_controlplane && [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if have_all "$KUBEBUILDER_ASSETS" etcd kube-apiserver kube-controller-manager; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS for the control plane"
    controlplane_dir="$KUBEBUILDER_ASSETS"
  else
    log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of etcd, kube-apiserver, kube-controller-manager; building instead"
  fi
fi

missing() {
  local need=()
  if $want_controlplane && ! have_all "$controlplane_dir" etcd kube-apiserver kube-controller-manager; then need+=(controlplane); fi
  if $want_helm && ! have_all "$helm_dir" helm; then need+=(helm); fi
  if $want_registry && ! have_all "$registry_dir" "${registry_binaries[@]}"; then need+=(registry); fi
  if $want_node && ! have_all "$kubelet_dir" kubelet; then need+=(kubelet); fi
  if $want_node && ! have_all "$containerd_dir" "${containerd_binaries[@]}"; then need+=(containerd); fi
  if $want_node && ! have_all "$pause_dir" pause; then need+=(pause); fi
  echo "${need[*]}"
}

print_dirs() {
  if $want_controlplane; then echo "controlplane=$controlplane_dir"; fi
  if $want_helm; then echo "helm=$helm_dir"; fi
  if $want_registry; then echo "registry=$registry_dir"; fi
  if $want_node; then
    echo "kubelet=$kubelet_dir"
    echo "containerd=$containerd_dir"
    echo "pause=$pause_dir"
    echo "runc=$(command -v runc)"
  fi
}

todo="$(missing)"
if [ -z "$todo" ]; then
  print_dirs
  exit 0
fi

# --- building ---------------------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  fail "$todo must be built, and there is no Go toolchain." \
    "Install Go 1.26 or newer (https://go.dev/doc/install; /usr/local/go/bin is found without PATH)." \
    "For the control plane alone, KUBEBUILDER_ASSETS may instead point at a folder holding etcd," \
    "kube-apiserver and kube-controller-manager (for example: setup-envtest use -p path)."
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
if ! flock -n 9; then
  log "another provisioning run holds $cache_root/.lock; waiting for it"
  flock 9
fi
todo="$(missing)" # another run may have built some of it while we waited
log "building: ${todo:-nothing} ($(go version | cut -d' ' -f3); cache $cache_root)"

staging=""
ticker=""
cleanup() {
  [ -z "$ticker" ] || kill "$ticker" 2>/dev/null || true
  [ -z "$staging" ] || rm -rf "$staging"
}
trap cleanup EXIT
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod"
timings=()

# go_build <label> <expected time> <module dir> <go build args...>: builds into "$staging" (the
# args name it as @STAGING@) with progress every 15 s (packages compiled so far, go build -v).
go_build() {
  local label="$1" expected="$2" module="$3"
  shift 3
  local step_started=$SECONDS args=() build_log="$staging/.build.log"
  for arg in "$@"; do args+=("${arg//@STAGING@/$staging}"); done
  log "building $label ($expected)"
  (
    while sleep 15; do
      log "  still building $label: $(grep -c . "$build_log" 2>/dev/null || echo 0) packages compiled, $((SECONDS - step_started)) s"
    done
  ) &
  ticker=$!
  local status=0
  (cd "$module" && go build -v -trimpath "${args[@]}") >"$build_log" 2>&1 || status=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  ticker=""
  if [ "$status" -ne 0 ]; then
    tail -40 "$build_log" >&2
    fail "building $label failed (go build exit $status); the last lines are above."
  fi
  rm -f "$build_log"
  timings+=("$label: $((SECONDS - step_started)) s")
  log "built $label in $((SECONDS - step_started)) s"
}

# Builds land in a staging folder that replaces the cached one only once complete.
begin() { staging="$(mktemp -d "$cache_root/.build-XXXXXX")"; }
finish() {
  rm -rf "$1"
  mv "$staging" "$1"
  staging=""
}

k8s_ldflags() {
  local minor="${k8s_version#v1.}"
  minor="${minor%%.*}"
  local build_date flags="-s -w"
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  echo "$flags"
}

for step in $todo; do
  begin
  case "$step" in
    controlplane)
      go_build "etcd $etcd_version" "2-5 min cold" "$modules/etcd" -o @STAGING@/etcd go.etcd.io/etcd/server/v3
      go_build "kube-apiserver, kube-controller-manager and kubectl $k8s_version" \
        "15-20 min cold on 2 cores" "$modules/kubernetes" -ldflags "$(k8s_ldflags)" -o @STAGING@/ \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kubectl
      finish "$controlplane_dir"
      ;;
    helm)
      go_build "helm $helm_version" "about 4 min after the control plane on 2 cores; more from empty Go caches" "$modules/helm" \
        -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
        -o @STAGING@/helm helm.sh/helm/v4/cmd/helm
      finish "$helm_dir"
      ;;
    registry)
      go_build "the distribution registry $distribution_version, crane $crane_version and htpasswd" \
        "about 2 min cold" "$modules/registry" -ldflags "-s -w" -o @STAGING@/ ./registry ./htpasswd \
        github.com/google/go-containerregistry/cmd/crane
      finish "$registry_dir"
      ;;
    kubelet)
      go_build "kubelet $k8s_version" "a few minutes; less after the control plane" \
        "$modules/kubernetes" -ldflags "$(k8s_ldflags)" -o @STAGING@/ k8s.io/kubernetes/cmd/kubelet
      finish "$kubelet_dir"
      ;;
    containerd)
      go_build "containerd $containerd_version, its runc shim and ctr" "2-4 min cold" \
        "$modules/containerd" -tags "no_btrfs no_devmapper no_zfs" -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=${containerd_version#v}" \
        -o @STAGING@/ github.com/containerd/containerd/v2/cmd/containerd \
        github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
        github.com/containerd/containerd/v2/cmd/ctr
      finish "$containerd_dir"
      ;;
    pause)
      go_build "the pause binary" "seconds" "$modules/pause" -ldflags "-s -w" -o @STAGING@/pause .
      finish "$pause_dir"
      ;;
  esac
done

log "provisioned in $((SECONDS - started)) s: ${timings[*]/%/;}"
print_dirs
