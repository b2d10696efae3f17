# syntax=docker/dockerfile:1
# Berth's platform image: one image, three commands (see k8s/base/platform and docker-compose.yml):
#   node --import tsx bin/web.ts       the API (and dashboard)
#   node --import tsx bin/worker.ts    the Temporal worker
#   node --import tsx bin/migrate.ts   pending SQL migrations, before web and worker start
# The vault proxy runs from it too (the sandbox pod's sidecar).
# Target `litellm` builds the gateway image with the packages bin/setup pins (bin/stack/litellm-requirements.txt),
# served by Granian as bin/stack/gateway.ts explains.
#   docker build -t berth/platform:dev .
#   docker build --target litellm -t berth/litellm:dev .
ARG NODE_VERSION=20.20.2

FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are not needed: every native part ships prebuilt (as in bin/setup).
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY prisma ./prisma
COPY prisma.config.ts ./
# `prisma generate` needs only the WASM compiler; point the schema engine it never runs at /bin/true.
RUN PRISMA_SCHEMA_ENGINE_BINARY=/bin/true PRISMA_HIDE_UPDATE_MESSAGE=1 npx prisma generate \
 && npm prune --omit=dev --no-audit --no-fund

FROM python:3.12-slim-bookworm AS litellm
COPY bin/stack/litellm-requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin litellm
COPY bin/stack/litellm.yaml /etc/litellm/config.yaml
ENV LITELLM_TELEMETRY=False LITELLM_LOCAL_MODEL_COST_MAP=True
USER 10001
EXPOSE 4000
CMD ["litellm", "--config", "/etc/litellm/config.yaml", "--host", "0.0.0.0", "--port", "4000", "--run_granian"]

# The default (last) stage.
FROM node:${NODE_VERSION}-bookworm-slim AS platform
ENV NODE_ENV=production
WORKDIR /app
# The source as it is (.dockerignore leaves out tests, node_modules, .tools, .data), then the
# production dependencies and the generated Prisma client from the deps stage.
COPY . .
COPY --from=deps /app/node_modules ./node_modules
COPY --from=deps /app/lib/generated ./lib/generated
# The non-root uid the manifests run as (k8s/base/platform: runAsUser 10001).
RUN groupadd --gid 10001 berth && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin berth
USER 10001:10001
EXPOSE 3000
CMD ["node", "--import", "tsx", "bin/web.ts"]
