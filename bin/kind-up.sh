#!/usr/bin/env bash
# A local Kubernetes Berth in kind, idempotent (run it again after a change: it converges):
#   1. a kind cluster (BERTH_KIND_CLUSTER, default berth)
#   2. the agent-sandbox controller and extensions at a pinned release
#   3. Berth's images built and loaded into the node (platform, litellm, sandbox, egress-init)
#   4. secrets generated once and kept in .data/kind/ (never committed)
#   5. k8s/overlays/kind applied: platform, Postgres, Temporal, LiteLLM, sandbox templates and pools
# It also writes .data/kind/kubeconfig for docker-compose.yml's worker. Needs docker, kind, kubectl.
# Options (environment): BERTH_KIND_CLUSTER, AGENT_SANDBOX_VERSION, BERTH_KIND_SKIP_BUILD=1,
# BERTH_KIND_ROUTE_PODS=1 (Linux: route the pod network from this host, for docker compose).
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${BERTH_KIND_CLUSTER:-berth}
AGENT_SANDBOX_VERSION=${AGENT_SANDBOX_VERSION:-v0.5.6}
RELEASES=https://github.com/kubernetes-sigs/agent-sandbox/releases/download
STATE=.data/kind
CONTEXT="kind-$CLUSTER"

step() { printf '\033[1mkind-up:\033[0m %s\n' "$*" >&2; }
die() { echo "kind-up: $*" >&2; exit 1; }
for tool in docker kind kubectl openssl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (see docs/kubernetes.md)"
done
kc() { kubectl --context "$CONTEXT" "$@"; }
mkdir -p "$STATE"
chmod 700 "$STATE"

if ! kind get clusters | grep -qx "$CLUSTER"; then
  step "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --wait 120s
fi

step "installing agent-sandbox $AGENT_SANDBOX_VERSION"
kc apply --server-side -f "$RELEASES/$AGENT_SANDBOX_VERSION/manifest.yaml"
kc apply --server-side -f "$RELEASES/$AGENT_SANDBOX_VERSION/extensions.yaml"
kc -n agent-sandbox-system wait --for=condition=Available deployment --all --timeout=180s

if [ "${BERTH_KIND_SKIP_BUILD:-0}" != 1 ]; then
  step "building images"
  docker build -t berth/platform:dev .
  docker build --target litellm -t berth/litellm:dev .
  docker build -t berth/sandbox-base:dev harnesses
  docker tag berth/sandbox-base:dev berth/sandbox-builtin:dev
  docker build -t berth/egress-init:dev harnesses/images/egress-init
fi
step "loading images into the node"
kind load docker-image --name "$CLUSTER" berth/platform:dev berth/litellm:dev berth/sandbox-builtin:dev berth/egress-init:dev

# A secret value made once (by the command after the name) and reused on every later run.
kept() {
  local file="$STATE/$1"; shift
  [ -s "$file" ] || (umask 077 && "$@" | tr -d '\n' >"$file")
  cat "$file"
}
# Applies a generic Secret from env files (create-or-update; values never appear in ps).
apply_secret() {
  local ns=$1 name=$2; shift 2
  local args=()
  for file in "$@"; do args+=("--from-env-file=$file"); done
  kc -n "$ns" create secret generic "$name" "${args[@]}" --dry-run=client -o yaml | kc apply -f -
}

step "secrets and the vault CA"
kc apply -f k8s/base/namespaces.yaml
pg_password=$(kept postgres-password openssl rand -hex 24)
master_key=sk-$(kept litellm-master-key openssl rand -hex 24)
vault_key=$(kept vault-key openssl rand -base64 32)
# The worker binds each sandbox pod's vault proxy to its session with this token.
control_token=$(kept vault-proxy-token openssl rand -hex 32)
if [ ! -s "$STATE/ca.key" ]; then
  (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=Berth vault proxy CA" -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$STATE/ca.key" -out "$STATE/ca.crt" 2>/dev/null)
fi
env_file() { # name then KEY=value lines on stdin; prints the file's path
  local file="$STATE/$1.env"
  (umask 077 && cat >"$file")
  echo "$file"
}
apply_secret berth berth-postgres "$(printf 'password=%s\n' "$pg_password" | env_file postgres)"
apply_secret berth berth-litellm "$(printf 'LITELLM_MASTER_KEY=%s\n' "$master_key" | env_file litellm)"
apply_secret berth berth-secrets "$(env_file platform <<EOF
DATABASE_URL=postgresql://berth:$pg_password@postgres.berth.svc.cluster.local:5432/berth
BERTH_VAULT_KEY=$vault_key
LITELLM_API_KEY=$master_key
BERTH_ADMIN_API_KEY=$(kept admin-api-key openssl rand -hex 32)
VAULT_PROXY_CONTROL_TOKEN=$control_token
EOF
)"
# The sidecar's Secret holds PEM (several lines), so it is made from one file per key, not an env file.
# Only the control token and the CA: no database and no vault key in sandbox pods (the worker pushes
# each session's view). Made afresh, so keys an earlier version put there do not linger.
vp="$STATE/vault-proxy.d"
rm -rf "$vp"
(umask 077 && mkdir -p "$vp")
put() { (umask 077 && printf '%s' "$2" >"$vp/$1"); }
put VAULT_PROXY_CONTROL_TOKEN "$control_token"
put VAULT_PROXY_CA_CERT "$(cat "$STATE/ca.crt")"
put VAULT_PROXY_CA_KEY "$(cat "$STATE/ca.key")"
kc -n berth-sandboxes create secret generic berth-vault-proxy --from-file="$vp" --dry-run=client -o yaml | kc apply -f -
# The CA certificate (never its key) for the harness containers and for the worker, which verifies
# the vault proxies' control ports with it: one ConfigMap per namespace.
for ns in berth-sandboxes berth; do
  kc -n "$ns" create configmap berth-ca --from-file=ca.crt="$STATE/ca.crt" --dry-run=client -o yaml | kc apply -f -
done

step "applying k8s/overlays/kind"
kc apply -k k8s/overlays/kind
kc -n berth rollout status statefulset/postgres --timeout=180s
kc -n berth wait --for=condition=Available deployment/berth-web deployment/berth-worker --timeout=300s

kind get kubeconfig --internal --name "$CLUSTER" >"$STATE/kubeconfig"
if [ "${BERTH_KIND_ROUTE_PODS:-0}" = 1 ]; then
  node_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CLUSTER-control-plane")
  pod_cidr=$(kc get node "$CLUSTER-control-plane" -o jsonpath='{.spec.podCIDR}')
  step "routing $pod_cidr via $node_ip (sudo)"
  sudo ip route replace "$pod_cidr" via "$node_ip"
fi
step "ready: kubectl --context $CONTEXT -n berth port-forward svc/berth-web 3000:80"
