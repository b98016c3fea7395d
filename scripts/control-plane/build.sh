#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, etcd and kwok from Go modules
# (via the Go module proxy) and cache them under
#   ${CONVEYOR_CACHE_DIR:-$HOME/.cache/conveyor}/k8s/<k8s-version>/bin/
# Binaries already present are not rebuilt. Prints the bin dir on stdout.
#
# Overridable: K8S_VERSION, ETCD_VERSION, KWOK_VERSION, BUILD_KUBECTL=0 (kubectl is built by
# default: the tests render manifests/ with `kubectl kustomize` and dry-run them through it)
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.33.13}
ETCD_VERSION=${ETCD_VERSION:-v3.5.35}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
BIN=${CONVEYOR_CACHE_DIR:-$HOME/.cache/conveyor}/k8s/${K8S_VERSION}/bin

KUBE_BINS=(kube-apiserver kube-controller-manager kube-scheduler)
[[ ${BUILD_KUBECTL:-1} == 1 ]] && KUBE_BINS+=(kubectl)

export CGO_ENABLED=0 GOFLAGS=-trimpath GOWORK=off GO111MODULE=on
log() { echo "[build-control-plane] $*" >&2; }
have() { [[ -x $BIN/$1 ]]; }
command -v go >/dev/null || { log "go not found in PATH"; exit 1; }
mkdir -p "$BIN"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"   # keep go commands away from any caller go.mod / go.work

# ---- kube-apiserver / kube-controller-manager / kube-scheduler (/ kubectl) ---
missing=()
for b in "${KUBE_BINS[@]}"; do have "$b" || missing+=("$b"); done
if ((${#missing[@]})); then
  log "building ${missing[*]} ${K8S_VERSION} (first time takes several minutes)..."
  t0=$SECONDS
  staging=v0.${K8S_VERSION#v1.}                      # v1.32.13 -> v0.32.13
  info=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}")
  kdir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$info")
  kmod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<<"$info")
  mkdir -p "$WORK/kube" && cd "$WORK/kube"
  go mod init conveyor.local/kube-wrapper >/dev/null 2>&1
  # same go directive + godebug settings as kubernetes itself (main-module only)
  go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$kmod")"
  awk '$1=="godebug"{print}' "$kmod" >>go.mod
  go mod edit -require="k8s.io/kubernetes@${K8S_VERSION}"
  # every "X => ./staging/src/X" replace in kubernetes' go.mod -> X@v0.Y.Z
  awk '/^replace[[:space:]]*\(/{b=1;next} b&&/^\)/{b=0}
       { l=$0; sub(/^replace[[:space:]]+/,"",l); n=split(l,f,/[[:space:]]+/)
         for(i=1;i<=n;i++) if(f[i]=="=>" && f[i+1] ~ /^\.\/staging\//) print (f[1]!=""?f[1]:f[2]) }' "$kmod" |
    while read -r m; do go mod edit -replace="$m=$m@$staging"; done
  declare -A src=([kube-apiserver]=cmd/kube-apiserver/apiserver.go
                  [kube-controller-manager]=cmd/kube-controller-manager/controller-manager.go
                  [kube-scheduler]=cmd/kube-scheduler/scheduler.go
                  [kubectl]=cmd/kubectl/kubectl.go)
  for b in "${missing[@]}"; do mkdir -p "cmd/$b"; cp "$kdir/${src[$b]}" "cmd/$b/main.go"; chmod u+w "cmd/$b/main.go"; done
  go mod tidy
  minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  ld="-s -w"
  for k in "gitVersion=${K8S_VERSION}" gitMajor=1 "gitMinor=${minor}" gitTreeState=clean \
           "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ld+=" -X k8s.io/component-base/version.$k -X k8s.io/client-go/pkg/version.$k"
  done
  mkdir -p out
  nice -n 10 go build -ldflags="$ld" -o out/ "${missing[@]/#/./cmd/}"
  for b in "${missing[@]}"; do mv -f "out/$b" "$BIN/$b"; done
  log "built ${missing[*]} in $((SECONDS - t0))s"
fi

# ---- etcd --------------------------------------------------------------------
# server/v3's go.mod has replace directives (../api ...), so `go install` refuses
# it; build it from a tiny wrapper module instead (dependency replaces are ignored).
if ! have etcd; then
  log "building etcd ${ETCD_VERSION} (first time takes a minute or two)..."
  t0=$SECONDS
  mkdir -p "$WORK/etcd" && cd "$WORK/etcd"
  go mod init conveyor.local/etcd-wrapper >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1 ||
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  nice -n 10 go build -ldflags="-s -w" -o etcd go.etcd.io/etcd/server/v3
  mv -f etcd "$BIN/etcd"
  log "built etcd in $((SECONDS - t0))s"
fi

# ---- kwok --------------------------------------------------------------------
if ! have kwok; then
  log "building kwok ${KWOK_VERSION}..."
  t0=$SECONDS
  GOBIN="$WORK/gobin" nice -n 10 go install -ldflags="-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  mv -f "$WORK/gobin/kwok" "$BIN/kwok"
  log "built kwok in $((SECONDS - t0))s"
fi

# kwok has no built-in stages (kwokctl normally supplies them): ship the default
# "fast" set (node-initialize, node-heartbeat-with-lease, pod-ready/complete/delete)
STAGES=${BIN%/bin}/kwok-stages.yaml
if [[ ! -s $STAGES ]]; then
  kw=$(go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
           pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"; cat "$kw/kustomize/stage/$f.yaml"
  done >"$STAGES.tmp" && mv "$STAGES.tmp" "$STAGES"
fi

echo "$BIN"
