#!/usr/bin/env bash
# Installs every external binary sovereign talks to, into a per-user cache keyed by name and version:
#   ${SOVEREIGN_TOOLS_DIR:-~/.cache/sovereign/tools}/<name>-<version>/
# An entry is built in a scratch folder and renamed into place only when complete, so a failed or
# interrupted build never leaves an entry a later run trusts. A second run is a no-op.
#
# Usage: tools/install.sh [opa|etcd|kubernetes|pulumi|kuberay-crds|kuberay-operator|prometheus|alertmanager|pushgateway ...]   (default: all)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${SOVEREIGN_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sovereign/tools}
mkdir -p "$cache"

started=$(date +%s)
say() { printf '[tools %4ss] %s\n' "$(($(date +%s) - started))" "$*"; }
die() { printf 'tools: %s\n' "$*" >&2; exit 1; }

need_go() {
  command -v go >/dev/null || die "the Go toolchain is needed to build $1 (install Go >= 1.24, then re-run 'make tools')"
}

# install_entry NAME VERSION BUILD_FN [BINARY...]: run BUILD_FN with $1 = scratch folder unless the
# entry is complete and holds every BINARY listed (an entry from an older recipe may lack one).
install_entry() {
  local name=$1 version=$2 build=$3; shift 3
  local final="$cache/$name-$version" missing=""
  for bin in "$@"; do [[ -x "$final/bin/$bin" ]] || missing+=" $bin"; done
  if [[ -f "$final/.complete" && -z "$missing" ]]; then
    say "$name $version: cached at $final"
    return
  fi
  [[ -z "$missing" || ! -d "$final" ]] || say "$name $version: cached entry lacks$missing, rebuilding"
  local scratch="$cache/.partial-$name-$version-$$"
  rm -rf "$scratch" && mkdir -p "$scratch/bin"
  trap 'rm -rf "$scratch"' EXIT
  say "$name $version: installing..."
  local t0=$(date +%s)
  "$build" "$scratch"
  date -u +%FT%TZ >"$scratch/.complete"
  rm -rf "$final"
  mv "$scratch" "$final"
  trap - EXIT
  say "$name $version: done in $(($(date +%s) - t0)) s -> $final"
}

# on_path_matches BINARY PATTERN ARGS...: true when BINARY on PATH prints a version matching PATTERN.
on_path_matches() {
  local bin=$1 pattern=$2; shift 2
  local found
  found=$(command -v "$bin" 2>/dev/null) || return 1
  [[ "$found" == "$cache"/* ]] && return 1
  "$found" "$@" 2>/dev/null | grep -qE "$pattern"
}

link_from_path() { ln -s "$(command -v "$2")" "$1/bin/$2"; }

go_build() {  # go_build MODULE_DIR OUT PACKAGE [LDFLAGS]
  (cd "$here/go/$1" && GOFLAGS=-mod=mod go build -trimpath -ldflags "${4:-}" -o "$2" "$3")
}

build_opa() {
  if on_path_matches opa "Version: ${OPA_VERSION#v}$" version; then link_from_path "$1" opa; return; fi
  need_go opa
  GOBIN="$1/bin" GOFLAGS=-mod=mod go install "github.com/open-policy-agent/opa@$OPA_VERSION"
}

build_etcd() {
  if on_path_matches etcd "etcd Version: ${ETCD_VERSION#v}$" --version; then link_from_path "$1" etcd; return; fi
  need_go etcd
  go_build etcd "$1/bin/etcd" go.etcd.io/etcd/server/v3
}

build_kubernetes() {
  need_go kube-apiserver
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local ld="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
  say "  building kube-apiserver (the longest step: about 3 minutes on 2 cores)"
  go_build kubernetes "$1/bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ld"
  say "  building kubectl"
  go_build kubernetes "$1/bin/kubectl" k8s.io/kubernetes/cmd/kubectl "$ld"
  # Only its garbage-collector and namespace controllers run: foreground deletes and namespace
  # deletion never finish without them.
  say "  building kube-controller-manager"
  go_build kubernetes "$1/bin/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager "$ld"
}

build_pulumi() {
  if on_path_matches pulumi "^$PULUMI_VERSION$" version; then link_from_path "$1" pulumi; return; fi
  need_go pulumi
  say "  building the pulumi CLI (about 3 minutes on 2 cores)"
  go_build pulumi "$1/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"
}

kuberay_module() {  # the pinned KubeRay Go module's folder (in Go's module cache)
  (cd "$here/go/etcd" && go mod download -json "github.com/ray-project/kuberay/ray-operator@$KUBERAY_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
}

# copy_from_kuberay ENTRY TOOL DEST FILE...: files of KubeRay's Go module (paths in it) into ENTRY/DEST.
copy_from_kuberay() {
  local entry=$1 tool=$2 dest=$3 dir
  shift 3
  need_go "$tool"
  dir=$(kuberay_module)
  mkdir -p "$entry/$dest"
  for file in "$@"; do
    [[ -f "$dir/$file" ]] || die "KubeRay $KUBERAY_VERSION module has no $file (looked in '$dir')"
    cp "$dir/$file" "$entry/$dest/"
  done
  chmod -R u+w "$entry/$dest"
}

build_kuberay_crds() {
  need_go kuberay-crds
  local dir
  dir=$(kuberay_module)
  # shellcheck disable=SC2046  # one word per CRD file
  copy_from_kuberay "$1" kuberay-crds crds $(cd "$dir" && ls config/crd/bases/*.yaml)
}

# KubeRay's operator as its kustomize base declares it (RBAC and the manager Deployment): a real region's
# stack installs it (infra/region_objects.py kuberay_operator), setting the namespace and the image.
build_kuberay_operator() {
  copy_from_kuberay "$1" kuberay-operator operator config/manager/manager.yaml \
    config/rbac/{service_account,role,role_binding,leader_election_role,leader_election_role_binding}.yaml
}

# apt_install PACKAGE SPEC BINARY: Debian's package (SPEC: PACKAGE or PACKAGE=VERSION), as root; its own daemon
# is stopped where systemd runs (the tests and the demo start what they need on loopback).
apt_install() {
  local package=$1 spec=$2 binary=$3
  [[ $(id -u) == 0 ]] || die "$package missing: run 'sudo apt-get install -y $spec' (Debian), then 'make tools'"
  say "$package: installing Debian's $spec (apt-get)..."
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$spec" >/dev/null
  if [[ -d /run/systemd/system ]]; then  # no systemd (a container): the package started no daemon
    systemctl disable --now "$package" >/dev/null
  fi
  say "$package: $("$binary" --version 2>&1 | head -1)"
}

# debian_version PACKAGE: the installed version, or nothing when the package is not installed.
debian_version() {
  if dpkg-query -W "$1" >/dev/null 2>&1; then
    dpkg-query -W -f='${Version}' "$1"
  fi
}

install_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    say "prometheus: $(prometheus --version 2>&1 | head -1)"
    return
  fi
  apt_install prometheus prometheus prometheus
}

# install_debian PACKAGE VERSION BINARY: Debian's package at exactly VERSION.
install_debian() {
  local package=$1 version=$2 binary=$3
  if [[ $(debian_version "$package") == "$version" ]] && command -v "$binary" >/dev/null; then
    say "$package: $("$binary" --version 2>&1 | head -1)"
    return
  fi
  apt_install "$package" "$package=$version" "$binary"
}

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(opa etcd kubernetes pulumi kuberay-crds kuberay-operator prometheus alertmanager pushgateway)
for t in "${targets[@]}"; do
  case $t in
    opa) install_entry opa "$OPA_VERSION" build_opa ;;
    etcd) install_entry etcd "$ETCD_VERSION" build_etcd ;;
    kubernetes) install_entry kubernetes "$KUBERNETES_VERSION" build_kubernetes kube-apiserver kubectl kube-controller-manager ;;
    pulumi) install_entry pulumi "$PULUMI_VERSION" build_pulumi ;;
    kuberay-crds) install_entry kuberay-crds "$KUBERAY_VERSION" build_kuberay_crds ;;
    kuberay-operator) install_entry kuberay-operator "$KUBERAY_VERSION" build_kuberay_operator ;;
    prometheus) install_prometheus ;;
    # amtool checks the example routing (infra/monitoring/alertmanager/)
    alertmanager) install_debian prometheus-alertmanager "$ALERTMANAGER_DEBIAN_VERSION" amtool ;;
    # the Pulumi policy pack pushes its decisions there (infra/preview_metrics.py)
    pushgateway) install_debian prometheus-pushgateway "$PUSHGATEWAY_DEBIAN_VERSION" prometheus-pushgateway ;;
    *) die "unknown tool '$t' (known: opa etcd kubernetes pulumi kuberay-crds kuberay-operator prometheus alertmanager pushgateway)" ;;
  esac
done
say "all tools ready in $cache"
