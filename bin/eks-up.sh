#!/usr/bin/env bash
# Berth on EKS, idempotent: creates what is missing and updates the rest. See docs/deploy-aws.md.
#   1. the cluster (eksctl) with two managed node groups: `platform` and `sandboxes` (tainted, so
#      only sandbox pods land there), the EBS CSI driver and VPC CNI network policy enforcement
#   2. a gp3 StorageClass, the agent-sandbox controller at a pinned release
#   3. ECR repositories; images built and pushed with the current git commit as tag
#   4. secrets from the environment; k8s/overlays/eks applied with this run's images and addresses
# Parameters (environment; required ones are marked *):
#   BERTH_EKS_CLUSTER (berth)  AWS_REGION* (e.g. eu-west-1)  BERTH_EKS_VERSION (1.35)
#   BERTH_PLATFORM_INSTANCE (m6i.large)   BERTH_PLATFORM_NODES (2)
#   BERTH_SANDBOX_INSTANCE (m6i.2xlarge)  BERTH_SANDBOX_NODES_MIN (1)  BERTH_SANDBOX_NODES_MAX (10)
#   DATABASE_URL* (RDS Postgres)  TEMPORAL_ADDRESS* (host:port)  BERTH_VAULT_KEY*  BERTH_ADMIN_API_KEY*
#   LITELLM_MASTER_KEY*  OPENAI_API_KEY / ANTHROPIC_API_KEY … (optional, passed to the gateway)
#   BERTH_VAULT_CA_CERT and BERTH_VAULT_CA_KEY (paths to the vault proxy's CA pair, EC P-256 or RSA;
#   unset: the pair already in the cluster is kept, or a new EC pair is made on the first run)
#   VAULT_PROXY_CONTROL_TOKEN (unset: the one in the cluster is kept, or one is generated)
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${BERTH_EKS_CLUSTER:-berth}
REGION=${AWS_REGION:?set AWS_REGION}
K8S_VERSION=${BERTH_EKS_VERSION:-1.35}
AGENT_SANDBOX_VERSION=${AGENT_SANDBOX_VERSION:-v0.5.6}
RELEASES=https://github.com/kubernetes-sigs/agent-sandbox/releases/download

step() { printf '\033[1meks-up:\033[0m %s\n' "$*" >&2; }
die() { echo "eks-up: $*" >&2; exit 1; }
for tool in aws eksctl kubectl docker git openssl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (see docs/deploy-aws.md)"
done
for var in DATABASE_URL TEMPORAL_ADDRESS BERTH_VAULT_KEY BERTH_ADMIN_API_KEY LITELLM_MASTER_KEY; do
  [ -n "${!var:-}" ] || die "set $var (see docs/deploy-aws.md)"
done

if ! eksctl get cluster --name "$CLUSTER" --region "$REGION" >/dev/null 2>&1; then
  step "creating EKS cluster $CLUSTER in $REGION (15-20 minutes)"
  eksctl create cluster -f - <<EOF
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata: {name: $CLUSTER, region: $REGION, version: "$K8S_VERSION"}
iam: {withOIDC: true}
addons:
  - name: vpc-cni
    configurationValues: '{"enableNetworkPolicy": "true"}'
  - name: aws-ebs-csi-driver
    wellKnownPolicies: {ebsCSIController: true}
managedNodeGroups:
  - name: platform
    instanceType: ${BERTH_PLATFORM_INSTANCE:-m6i.large}
    desiredCapacity: ${BERTH_PLATFORM_NODES:-2}
    labels: {berth.dev/pool: platform}
  - name: sandboxes
    instanceType: ${BERTH_SANDBOX_INSTANCE:-m6i.2xlarge}
    minSize: ${BERTH_SANDBOX_NODES_MIN:-1}
    maxSize: ${BERTH_SANDBOX_NODES_MAX:-10}
    labels: {berth.dev/pool: sandboxes}
    taints: [{key: berth.dev/sandboxes, value: "true", effect: NoSchedule}]
EOF
fi
aws eks update-kubeconfig --name "$CLUSTER" --region "$REGION" --alias "berth-$CLUSTER" >/dev/null
kc() { kubectl --context "berth-$CLUSTER" "$@"; }

step "storage class and agent-sandbox $AGENT_SANDBOX_VERSION"
kc apply -f - <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: gp3}
provisioner: ebs.csi.aws.com
parameters: {type: gp3, encrypted: "true"}
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
EOF
kc apply --server-side -f "$RELEASES/$AGENT_SANDBOX_VERSION/manifest.yaml"
kc apply --server-side -f "$RELEASES/$AGENT_SANDBOX_VERSION/extensions.yaml"
kc -n agent-sandbox-system wait --for=condition=Available deployment --all --timeout=300s

account=$(aws sts get-caller-identity --query Account --output text)
registry="$account.dkr.ecr.$REGION.amazonaws.com"
tag=$(git rev-parse --short=12 HEAD)
step "images to $registry (tag $tag)"
aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$registry"
build_push() { # repository, then docker build arguments
  local repo=$1; shift
  aws ecr describe-repositories --region "$REGION" --repository-names "berth/$repo" >/dev/null 2>&1 ||
    aws ecr create-repository --region "$REGION" --repository-name "berth/$repo" --image-scanning-configuration scanOnPush=true >/dev/null
  docker build -t "$registry/berth/$repo:$tag" "$@"
  docker push "$registry/berth/$repo:$tag"
}
build_push platform .
build_push litellm --target litellm .
build_push sandbox-builtin harnesses
build_push egress-init harnesses/images/egress-init

step "secrets"
kc apply -f k8s/base/namespaces.yaml
secret() { # namespace name KEY... (values from this environment, through a file, never argv)
  local ns=$1 name=$2 file; shift 2
  file=$(mktemp); chmod 600 "$file"
  for key in "$@"; do printf '%s=%s\n' "$key" "${!key:-}" >>"$file"; done
  kc -n "$ns" create secret generic "$name" --from-env-file="$file" --dry-run=client -o yaml | kc apply -f -
  rm -f "$file"
}
# The vault proxy's Secret: what is already in the cluster is kept unless given here.
vp=$(mktemp -d); chmod 700 "$vp"
existing() { kc -n berth-sandboxes get secret berth-vault-proxy -o "jsonpath={.data.$1}" 2>/dev/null | base64 -d; }
VAULT_PROXY_CONTROL_TOKEN=${VAULT_PROXY_CONTROL_TOKEN:-$(existing VAULT_PROXY_CONTROL_TOKEN)}
VAULT_PROXY_CONTROL_TOKEN=${VAULT_PROXY_CONTROL_TOKEN:-$(openssl rand -hex 32)}
if [ -n "${BERTH_VAULT_CA_CERT:-}" ] && [ -n "${BERTH_VAULT_CA_KEY:-}" ]; then
  cp "$BERTH_VAULT_CA_CERT" "$vp/VAULT_PROXY_CA_CERT"; cp "$BERTH_VAULT_CA_KEY" "$vp/VAULT_PROXY_CA_KEY"
elif [ -n "$(existing VAULT_PROXY_CA_KEY)" ]; then
  existing VAULT_PROXY_CA_CERT >"$vp/VAULT_PROXY_CA_CERT"; existing VAULT_PROXY_CA_KEY >"$vp/VAULT_PROXY_CA_KEY"
else
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=Berth vault proxy CA" -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
    -addext keyUsage=critical,keyCertSign,cRLSign -keyout "$vp/VAULT_PROXY_CA_KEY" -out "$vp/VAULT_PROXY_CA_CERT" 2>/dev/null
fi
export LITELLM_API_KEY=$LITELLM_MASTER_KEY VAULT_PROXY_CONTROL_TOKEN # read by `secret` through ${!key}
secret berth berth-secrets DATABASE_URL BERTH_VAULT_KEY LITELLM_API_KEY BERTH_ADMIN_API_KEY VAULT_PROXY_CONTROL_TOKEN
secret berth berth-litellm LITELLM_MASTER_KEY OPENAI_API_KEY ANTHROPIC_API_KEY GEMINI_API_KEY MISTRAL_API_KEY
# PEM has several lines, so this Secret is made from one file per key rather than an env file.
# Only the token and the CA: sandbox pods get no database URL and no vault key.
printf '%s' "$VAULT_PROXY_CONTROL_TOKEN" >"$vp/VAULT_PROXY_CONTROL_TOKEN"
kc -n berth-sandboxes create secret generic berth-vault-proxy --from-file="$vp" --dry-run=client -o yaml | kc apply -f -
# The CA certificate (never its key) for the harness containers and for the worker, which verifies
# the vault proxies' control ports with it: one ConfigMap per namespace.
for ns in berth-sandboxes berth; do
  kc -n "$ns" create configmap berth-ca --from-file=ca.crt="$vp/VAULT_PROXY_CA_CERT" --dry-run=client -o yaml | kc apply -f -
done
rm -rf "$vp"

step "applying k8s/overlays/eks"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r k8s "$work/"
overlay="$work/k8s/overlays/eks"
for repo in platform litellm sandbox-builtin egress-init; do
  sed -i "s#newName: ACCOUNT.dkr.ecr.REGION.amazonaws.com/berth/$repo, newTag: latest#newName: $registry/berth/$repo, newTag: \"$tag\"#" "$overlay/kustomization.yaml"
done
sed -i "s#temporal.example.internal:7233#$TEMPORAL_ADDRESS#" "$overlay/kustomization.yaml"
kc apply -k "$overlay"
kc -n berth wait --for=condition=Available deployment/berth-web deployment/berth-worker --timeout=600s
step "ready: expose svc/berth-web in namespace berth through your ingress or load balancer"
