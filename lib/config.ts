// The one place Berth reads its environment. Every process calls loadConfig() at start; a wrong or
// missing value stops it with a message naming the variable. .env.example documents each one.
import path from 'node:path';
import { z } from 'zod';
import type { SessionLimits } from './types.ts';

const seconds = (def: number) => z.coerce.number().positive().default(def);
const port = (def: number) => z.coerce.number().int().min(1).max(65535).default(def);
const hostPort = z
  .string()
  .regex(/^[^:\s]+:\d{1,5}$/, 'expected host:port (e.g. 127.0.0.1:3128)')
  .refine((v) => Number(v.split(':')[1]) >= 1 && Number(v.split(':')[1]) <= 65535, 'the port must be 1-65535');
const pem = (label: string) => z.string().includes(`${label}-----`, { message: `expected PEM text with a ${label} block` });
const bool = (def: boolean) =>
  z.enum(['true', 'false', '1', '0']).default(def ? 'true' : 'false').transform((v) => v === 'true' || v === '1');

export const configSchema = z.object({
  BERTH_DATA_DIR: z.string().default('.data'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).default('postgresql://berth@127.0.0.1:54320/berth'),
  TEMPORAL_ADDRESS: z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port').default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_UI_URL: z.url().default('http://127.0.0.1:8233'),
  BERTH_TASK_QUEUE: z.string().min(1).default('berth-sessions'),
  // How long the API waits for Temporal to start a session or accept a message before answering 503.
  BERTH_TEMPORAL_DEADLINE_S: seconds(30),
  LITELLM_GATEWAY_URL: z.url().optional(),
  LITELLM_API_KEY: z.string().min(1).optional(),
  BERTH_ADMIN_API_KEY: z.string().min(16, 'use at least 16 characters').optional(),
  PORT: port(3000),
  BERTH_HOST: z.string().default('127.0.0.1'),
  BERTH_SANDBOX_BACKEND: z.enum(['local', 'kubernetes']).default('local'),
  // BERTH_SANDBOX_BACKEND=kubernetes (docs/kubernetes.md): claims go to this namespace, against the
  // warm pool <prefix><harness>; without a kubeconfig path the in-cluster service account is used.
  BERTH_K8S_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'expected a namespace name').default('berth-sandboxes'),
  BERTH_K8S_KUBECONFIG: z.string().min(1).optional(),
  BERTH_K8S_WARM_POOL_PREFIX: z.string().regex(/^[a-z0-9][-a-z0-9]*$/, 'expected the start of a resource name').default('berth-'),
  BERTH_K8S_SANDBOXD_PORT: port(7070),
  BERTH_K8S_READY_TIMEOUT_S: seconds(180),
  // The vault proxy sidecar's control port in every sandbox pod (the worker binds the session there).
  BERTH_K8S_VAULT_PROXY_CONTROL_PORT: port(3129),
  // The Berth CA's certificate (PEM file, the berth-ca ConfigMap; never the key): the sidecars' control
  // ports serve TLS signed by it, and the worker trusts nothing else there. Required with kubernetes.
  BERTH_K8S_VAULT_PROXY_CA_FILE: z.string().min(1).optional(),
  BERTH_IDLE_TIMEOUT_S: seconds(600),
  BERTH_MAX_STEPS: z.coerce.number().int().min(1).max(1000).default(50),
  BERTH_TOOL_TIMEOUT_S: seconds(120),
  BERTH_TOOL_OUTPUT_LIMIT: z.coerce.number().int().min(1024).default(32_768),
  BERTH_MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  BERTH_SANDBOX_MEMORY_MB: z.coerce.number().int().min(64).default(2048),
  BERTH_SANDBOX_CPU_S: z.coerce.number().int().min(1).default(3600),
  BERTH_SANDBOX_PIDS: z.coerce.number().int().min(16).default(512),
  BERTH_SANDBOX_FILE_MB: z.coerce.number().int().min(1).default(1024),
  // How long an activity may go silent before Temporal retries it elsewhere (a crashed worker's turn resumes after this).
  BERTH_HEARTBEAT_TIMEOUT_S: seconds(10),
  // Sessions continue-as-new at Temporal's suggestion, or earlier at this many history events (tests set it low).
  BERTH_CONTINUE_AS_NEW_EVENTS: z.coerce.number().int().min(100).default(10_000),
  BERTH_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(200),
  BERTH_WORKER_SHUTDOWN_GRACE_S: seconds(25),
  // How often each worker looks for sessions whose workflow closed without ending them (see activities/sandbox/closed-sessions.ts).
  BERTH_CLOSED_SESSION_SWEEP_S: seconds(60),
  // Where the worker serves the Temporal SDK's metrics for Prometheus (GET /metrics); unset: nowhere.
  BERTH_WORKER_METRICS_ADDRESS: hostPort.optional(),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  LOG_PRETTY: bool(false),
  // The vault (lib/vault.ts parses the keys; a process that needs them stops when none is usable).
  BERTH_VAULT_KEY: z.string().optional(),
  BERTH_VAULT_KEYS: z.string().optional(),
  BERTH_VAULT_KEY_ID: z.string().optional(),
  // PEM file of extra CAs the vault proxy trusts for upstreams (private services, tests).
  VAULT_EXTRA_CA_FILE: z.string().min(1).optional(),
  // Short directory for the vault proxy's unix sockets (default: <tmp>/berth-vault-<hash of data dir>).
  BERTH_VAULT_RUN_DIR: z.string().min(1).optional(),
  // Pod mode (a sandbox pod's sidecar; vault-proxy/pod.ts): set, the proxy serves the pod's one
  // session on this TCP address instead of unix sockets, and takes its session and the session's view
  // from the control port (the worker pushes it): DATABASE_URL and the vault key go unused.
  VAULT_PROXY_LISTEN: hostPort.optional(),
  VAULT_PROXY_CONTROL_LISTEN: hostPort.default('0.0.0.0:3129'),
  // Pod mode: where the bound session id (only the id, never the view) is kept, so a restarted sidecar
  // still refuses other sessions until the next bind (the pod's emptyDir /tmp outlives a container
  // restart). Unset: the binding lives in memory only.
  VAULT_PROXY_SESSION_FILE: z.string().min(1).optional(),
  // Shared by the pod's proxy and the worker (which binds sessions with it): the NetworkPolicy alone
  // is not authentication, since the sandbox shares the pod's network namespace.
  VAULT_PROXY_CONTROL_TOKEN: z.string().min(32, 'use at least 32 characters (openssl rand -hex 32)').optional(),
  // Pod mode: the Berth CA as PEM (certificate and private key, EC P-256 or RSA), from the Secret.
  VAULT_PROXY_CA_CERT: pem('CERTIFICATE').optional(),
  VAULT_PROXY_CA_KEY: pem('PRIVATE KEY').optional(),
});

export type Config = z.infer<typeof configSchema> & {
  /** Absolute data directory (BERTH_DATA_DIR resolved against the working directory). */
  dataDir: string;
  /** Variables named CONTAINER_ENV_X in the platform's environment, as { X: value }, for every sandbox. */
  containerEnv: Record<string, string>;
};

export class ConfigError extends Error {}

export function parseConfig(env: NodeJS.ProcessEnv): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration (see .env.example):\n${lines.join('\n')}`);
  }
  const containerEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith('CONTAINER_ENV_') && k.length > 'CONTAINER_ENV_'.length && v !== undefined) {
      containerEnv[k.slice('CONTAINER_ENV_'.length)] = v;
    }
  }
  return { ...parsed.data, dataDir: path.resolve(parsed.data.BERTH_DATA_DIR), containerEnv };
}

/** The limits a new session is started with (part of its workflow input). */
export function sessionLimits(config: Config): SessionLimits {
  return {
    idleTimeoutS: config.BERTH_IDLE_TIMEOUT_S,
    maxSteps: config.BERTH_MAX_STEPS,
    toolTimeoutS: config.BERTH_TOOL_TIMEOUT_S,
    heartbeatTimeoutS: config.BERTH_HEARTBEAT_TIMEOUT_S,
    continueAsNewEvents: config.BERTH_CONTINUE_AS_NEW_EVENTS,
  };
}

let cached: Config | undefined;

/** The process's config; on a bad environment, prints the problem and exits. */
export function loadConfig(): Config {
  if (cached) return cached;
  try {
    cached = parseConfig(process.env);
    return cached;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}
