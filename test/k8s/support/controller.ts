// Plays the agent-sandbox controller against the real API server, the way v0.5.6 reports status:
// a claim against a missing pool or template gets Ready=False WarmPoolNotFound/TemplateNotFound;
// otherwise it gets a Sandbox (from the template) whose "pod" is a real sandboxd listening on a
// loopback address of its own, with the workspace in a directory that stands for the PVC, and the
// vault proxy sidecar in pod mode on the same address (proxy and control ports from `sidecar`; the
// control port serves TLS its CA signs for that address, as in a real pod).
// Suspending the Sandbox stops sandboxd (the workspace stays); resuming starts it again on a new
// address, as a new pod gets a new IP. Deleting the claim takes the Sandbox and its workspace, and
// so does its expiry (ClaimExpired), which keeps the claim itself.
import fs from 'node:fs';
import path from 'node:path';
import { spawnLogged, waitReady, type ChildHandle } from '../../../bin/stack/child.ts';
import { startPodSidecar } from '../../support/pod-sidecar.ts';
import type { ControlPlane } from './control-plane.ts';
import { requireTool } from './control-plane.ts';

const ext = '/apis/extensions.agents.x-k8s.io/v1beta1';
const core = '/apis/agents.x-k8s.io/v1beta1';
const mergePatch = 'application/merge-patch+json';

interface Obj {
  metadata: { name: string; uid?: string; generation?: number; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: Record<string, unknown> & { warmPoolRef?: { name: string }; sandboxTemplateRef?: { name: string }; operatingMode?: string };
  status?: { conditions?: { type: string; status: string; reason: string }[] };
}

interface Pod {
  /** The claim this pod belongs to: a claim deleted and made again under its name is a new one. */
  claimUid: string;
  ip: string;
  workspace: string;
  sandboxd?: ChildHandle;
  vaultProxy?: ChildHandle;
}

/** The pod's vault proxy sidecar: its environment (token and CA; no database, no vault key) and ports. */
export interface Sidecar {
  env: NodeJS.ProcessEnv;
  proxyPort: number;
  controlPort: number;
}

export interface PlayedController {
  /** Resolves once no reconcile pass is running; until release(), claims stay as they are. */
  hold(): Promise<void>;
  release(): void;
  /** Sandboxes the controller has started, by claim name. */
  pods: Map<string, Pod>;
  stop(): Promise<void>;
}

export function playController(plane: ControlPlane, namespace: string, sandboxdPort: number, sidecar: Sidecar): PlayedController {
  const pods = new Map<string, Pod>();
  let held = false;
  const idle: (() => void)[] = [];
  let stopped = false;
  let nextIp = 2;
  const ipBase = `127.${40 + (process.pid % 200)}.${Math.floor(Math.random() * 250)}`;

  const list = async (prefix: string, plural: string) =>
    (await plane.request<{ items: Obj[] }>('GET', `${prefix}/namespaces/${namespace}/${plural}`)).items;
  const get = (prefix: string, plural: string, name: string) =>
    plane.request<Obj>('GET', `${prefix}/namespaces/${namespace}/${plural}/${name}`).catch(() => undefined);
  const patchStatus = (prefix: string, plural: string, name: string, status: unknown) =>
    plane.request('PATCH', `${prefix}/namespaces/${namespace}/${plural}/${name}/status`, { status }, mergePatch);
  const ready = (status: 'True' | 'False', reason: string, message: string, generation = 1) => ({
    type: 'Ready', status, reason, message, observedGeneration: generation, lastTransitionTime: new Date().toISOString(),
  });

  async function startPod(name: string, pod: Pod): Promise<void> {
    pod.ip = `${ipBase}.${nextIp++}`;
    fs.mkdirSync(pod.workspace, { recursive: true });
    pod.sandboxd = spawnLogged({
      name: `sandboxd ${name}`,
      command: requireTool('sandboxd'),
      args: ['--listen', `tcp:${pod.ip}:${sandboxdPort}`, '--workspace', pod.workspace],
      logPath: path.join(plane.dir, `sandboxd-${name}.log`),
    });
    const env = { ...sidecar.env, VAULT_PROXY_LISTEN: `${pod.ip}:${sidecar.proxyPort}`, VAULT_PROXY_CONTROL_LISTEN: `${pod.ip}:${sidecar.controlPort}` };
    const [vaultProxy] = await Promise.all([
      startPodSidecar({ env, logPath: path.join(plane.dir, `vault-proxy-${name}.log`) }),
      waitReady(pod.sandboxd, async () => (await fetch(`http://${pod.ip}:${sandboxdPort}/health`)).ok, 10_000),
    ]);
    pod.vaultProxy = vaultProxy;
  }

  async function stopPod(pod: Pod): Promise<void> {
    await Promise.all([pod.sandboxd?.stop(2_000), pod.vaultProxy?.stop(2_000)]);
    pod.sandboxd = undefined;
    pod.vaultProxy = undefined;
  }

  async function reconcileClaim(claim: Obj): Promise<void> {
    const name = claim.metadata.name;
    const existing = pods.get(name);
    if (existing && existing.claimUid !== claim.metadata.uid) await removePod(name, existing);
    // An expired claim (shutdownPolicy Retain) keeps the claim and loses its Sandbox and pod.
    const expired = claim.status?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'ClaimExpired');
    if (expired && existing && existing.claimUid === claim.metadata.uid) await removePod(name, existing);
    if (claim.status?.conditions?.length || pods.has(name)) return;
    const pool = await get(ext, 'sandboxwarmpools', claim.spec.warmPoolRef!.name);
    if (!pool) {
      await patchStatus(ext, 'sandboxclaims', name, { conditions: [ready('False', 'WarmPoolNotFound', `SandboxWarmPool "${claim.spec.warmPoolRef!.name}" not found`)] });
      return;
    }
    const template = await get(ext, 'sandboxtemplates', pool.spec.sandboxTemplateRef!.name);
    if (!template) {
      await patchStatus(ext, 'sandboxclaims', name, { conditions: [ready('False', 'TemplateNotFound', `SandboxTemplate "${pool.spec.sandboxTemplateRef!.name}" not found`)] });
      return;
    }
    const pod: Pod = { claimUid: claim.metadata.uid!, ip: '', workspace: path.join(plane.dir, 'pvc', `${name}-${claim.metadata.uid}`) };
    pods.set(name, pod);
    const sandbox = await plane.request<Obj>('POST', `${core}/namespaces/${namespace}/sandboxes`, {
      apiVersion: 'agents.x-k8s.io/v1beta1',
      kind: 'Sandbox',
      metadata: { name, labels: { 'agents.x-k8s.io/launch-type': 'warm' } },
      spec: { podTemplate: template.spec.podTemplate, volumeClaimTemplates: template.spec.volumeClaimTemplates },
    });
    await startPod(name, pod);
    await markRunning(name, sandbox.metadata.generation ?? 1);
  }

  async function markRunning(name: string, generation: number): Promise<void> {
    const pod = pods.get(name)!;
    const condition = ready('True', 'DependenciesReady', 'Pod is Ready; Service Exists', generation);
    await patchStatus(core, 'sandboxes', name, { conditions: [condition], podIPs: [pod.ip] });
    await patchStatus(ext, 'sandboxclaims', name, { conditions: [condition], sandbox: { name, podIPs: [pod.ip] } });
  }

  async function reconcileSandbox(sandbox: Obj): Promise<void> {
    const name = sandbox.metadata.name;
    const pod = pods.get(name);
    if (!pod) return;
    const generation = sandbox.metadata.generation ?? 1;
    if (sandbox.spec.operatingMode === 'Suspended' && pod.sandboxd) {
      await stopPod(pod);
      const condition = ready('False', 'SandboxSuspended', 'Sandbox is suspended', generation);
      const suspended = { ...condition, type: 'Suspended', status: 'True', reason: 'PodTerminated' };
      await patchStatus(core, 'sandboxes', name, { conditions: [condition, suspended], podIPs: null });
      await patchStatus(ext, 'sandboxclaims', name, { conditions: [condition], sandbox: { name, podIPs: null } });
    } else if (sandbox.spec.operatingMode !== 'Suspended' && !pod.sandboxd) {
      await startPod(name, pod);
      await markRunning(name, generation);
    }
  }

  // No garbage collector runs here: do what the owner references would (Sandbox, pod, PVC go).
  async function removePod(name: string, pod: Pod): Promise<void> {
    await stopPod(pod);
    pods.delete(name);
    await plane.request('DELETE', `${core}/namespaces/${namespace}/sandboxes/${name}`).catch(() => undefined);
    fs.rmSync(pod.workspace, { recursive: true, force: true });
  }

  async function collectDeleted(claimUids: Set<string>): Promise<void> {
    for (const [name, pod] of pods) if (!claimUids.has(pod.claimUid)) await removePod(name, pod);
  }

  const loop = (async () => {
    while (!stopped) {
      for (const resolve of idle.splice(0)) resolve();
      try {
        if (!held) {
          const claims = await list(ext, 'sandboxclaims');
          for (const claim of claims) await reconcileClaim(claim);
          for (const sandbox of await list(core, 'sandboxes')) await reconcileSandbox(sandbox);
          await collectDeleted(new Set(claims.map((c) => c.metadata.uid!)));
        }
      } catch (err) {
        if (!stopped) console.error('played controller:', err);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();

  return {
    pods,
    hold() {
      held = true;
      return new Promise<void>((resolve) => idle.push(resolve));
    },
    release: () => (held = false),
    async stop() {
      stopped = true;
      await loop;
      for (const pod of pods.values()) await stopPod(pod);
    },
  };
}
