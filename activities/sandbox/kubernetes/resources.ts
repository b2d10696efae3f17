// The agent-sandbox v1beta1 resources the kubernetes provider reads and writes, and how their
// status maps to "ready", "still waiting" or "failed" (field names from the v0.5.6 CRDs).

export const claims = { group: 'extensions.agents.x-k8s.io', version: 'v1beta1', plural: 'sandboxclaims' } as const;
export const sandboxes = { group: 'agents.x-k8s.io', version: 'v1beta1', plural: 'sandboxes' } as const;
export type ResourceKind = typeof claims | typeof sandboxes;

/** Label keys Berth puts on every claim (and, through additionalPodMetadata, on its pod). */
export const labelKeys = {
  managedBy: 'app.kubernetes.io/managed-by',
  team: 'berth.dev/team',
  agent: 'berth.dev/agent',
  session: 'berth.dev/session',
} as const;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: Record<string, unknown>;
  status?: {
    conditions?: Condition[];
    /** SandboxClaim: the adopted or created Sandbox. */
    sandbox?: { name?: string; podIPs?: string[] };
    /** Sandbox. */
    podIPs?: string[];
    serviceFQDN?: string;
  };
}

/** An agent-sandbox failure that waiting longer will not fix, named by its condition reason. */
export class SandboxClaimError extends Error {
  override name = 'SandboxClaimError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** The sandbox did not become Ready in time; the message carries the last reason seen. */
export class SandboxReadyTimeoutError extends Error {
  override name = 'SandboxReadyTimeoutError';
}

// Reasons the controllers set on Ready=False that mean "this claim will not become ready": the
// referenced pool or template is missing (the controller only retries once a minute), the claim
// or its Sandbox expired, or the claim's own spec was rejected.
const terminalReasons: Record<string, string> = {
  TemplateNotFound: 'the SandboxTemplate behind the warm pool does not exist',
  WarmPoolNotFound: 'the SandboxWarmPool does not exist',
  ClaimExpired: 'the SandboxClaim expired',
  SandboxExpired: 'the Sandbox expired',
  InvalidMetadata: 'the claim carries labels or annotations the controller refuses',
  EnvVarsInjectionRejected: "the template's envVarsInjectionPolicy refuses the claim's env",
  VolumeClaimTemplatesError: "the template's volumeClaimTemplatesPolicy refuses the claim's volumes",
};

export type Readiness =
  | { state: 'ready'; podIP: string; sandboxName: string }
  | { state: 'failed'; error: SandboxClaimError }
  | { state: 'waiting'; reason: string };

export function condition(obj: KubeObject, type: string): Condition | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

function failed(obj: KubeObject): Readiness | undefined {
  const ready = condition(obj, 'Ready');
  if (ready?.status === 'False' && ready.reason && ready.reason in terminalReasons) {
    const detail = ready.message ? `: ${ready.message}` : '';
    const text = `${obj.kind ?? 'resource'} ${obj.metadata.name}: ${terminalReasons[ready.reason]} (${ready.reason}${detail})`;
    return { state: 'failed', error: new SandboxClaimError(ready.reason, text) };
  }
  const finished = condition(obj, 'Finished');
  if (finished?.status === 'True') {
    const reason = finished.reason ?? 'Finished';
    return { state: 'failed', error: new SandboxClaimError(reason, `${obj.metadata.name}: the sandbox pod has ended (${reason})`) };
  }
  return undefined;
}

function waiting(obj: KubeObject): Readiness {
  const ready = condition(obj, 'Ready');
  return { state: 'waiting', reason: ready ? `${ready.reason ?? ready.status}${ready.message ? `: ${ready.message}` : ''}` : 'no Ready condition yet' };
}

/** A SandboxClaim is ready when Ready=True and it names its Sandbox and the pod's IP. */
export function claimReadiness(claim: KubeObject): Readiness {
  const fail = failed(claim);
  if (fail) return fail;
  const podIP = claim.status?.sandbox?.podIPs?.[0];
  const sandboxName = claim.status?.sandbox?.name;
  if (condition(claim, 'Ready')?.status === 'True' && podIP && sandboxName) return { state: 'ready', podIP, sandboxName };
  return waiting(claim);
}

/**
 * A Sandbox woken from Suspended is ready when its Ready condition is True for the generation we
 * asked for: an older Ready=True still describes the pod that was just terminated.
 */
export function sandboxReadiness(sandbox: KubeObject, minGeneration: number): Readiness {
  const fail = failed(sandbox);
  if (fail) return fail;
  const ready = condition(sandbox, 'Ready');
  const podIP = sandbox.status?.podIPs?.[0];
  const fresh = (ready?.observedGeneration ?? 0) >= minGeneration;
  if (ready?.status === 'True' && fresh && podIP && sandbox.spec?.operatingMode !== 'Suspended') {
    return { state: 'ready', podIP, sandboxName: sandbox.metadata.name };
  }
  return waiting(sandbox);
}

/** DNS-1123 name for a session's claim: `berth-ses-8k2m…`. */
export function claimName(sessionId: string): string {
  const name = `berth-${sessionId.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
  if (name.length > 63) throw new Error(`session id ${sessionId} is too long for a Kubernetes name`);
  return name;
}

/** A label value (63 characters of [A-Za-z0-9_.-], alphanumeric at both ends), or an error naming the field. */
export function labelValue(field: string, value: string): string {
  if (!/^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/.test(value)) {
    throw new Error(`${field} ${JSON.stringify(value)} cannot be a Kubernetes label value`);
  }
  return value;
}
