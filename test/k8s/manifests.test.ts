// Every manifest in k8s/ (each file, and each kustomization rendered) validated by kubeconform
// against schemas made offline (support/schemas.ts); docker-compose.yml through
// `docker compose config`; the shell scripts through shellcheck.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, requireTool, startControlPlane, yamlDocs } from './support/control-plane.ts';
import { writeBuiltinSchemas, writeCrdSchemas } from './support/schemas.ts';

const run = promisify(execFile);
const k8sDir = path.join(repoRoot, 'k8s');
let schemaDir: string;
let workDir: string;

beforeAll(async () => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-manifests-'));
  schemaDir = path.join(workDir, 'schemas');
  fs.mkdirSync(schemaDir);
  const plane = await startControlPlane();
  try {
    expect(await writeBuiltinSchemas(plane, schemaDir)).toBeGreaterThan(50);
  } finally {
    await plane.stop();
  }
  expect(writeCrdSchemas(schemaDir)).toBe(8);
}, 180_000);

afterAll(() => fs.rmSync(workDir, { recursive: true, force: true }));

interface Verdict {
  filename: string;
  kind: string;
  name: string;
  status: string;
  msg: string;
}

/** kubeconform's verdict on each resource in the given files (or on stdin). */
async function kubeconform(files: string[], stdin?: string): Promise<Verdict[]> {
  const args = [
    '-strict', '-verbose', '-output', 'json',
    '-schema-location', `${schemaDir}/{{ .ResourceKind }}{{ .KindSuffix }}.json`,
    '-schema-location', `${schemaDir}/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`,
    ...(files.length ? files : ['-']),
  ];
  const child = execFile(requireTool('kubeconform'), args, { maxBuffer: 16 << 20 });
  child.stdin!.end(stdin ?? '');
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => child.on('close', resolve));
  // kubeconform checks in parallel: order the verdicts for stable comparisons.
  const key = (v: Verdict) => `${v.filename} ${v.kind} ${v.name}`;
  return (JSON.parse(out) as { resources: Verdict[] }).resources.sort((a, b) => key(a).localeCompare(key(b)));
}

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.yaml')).map((f) => path.join(dir, f)).sort();
}

const isKustomization = (file: string) => path.basename(file) === 'kustomization.yaml';

describe('k8s/ manifests', () => {
  it('every resource file is valid against the Kubernetes and agent-sandbox schemas', async () => {
    const files = yamlFiles(k8sDir).filter((f) => !isKustomization(f));
    const verdicts = await kubeconform(files);
    const invalid = verdicts.filter((v) => v.status !== 'statusValid');
    expect(invalid).toEqual([]);
    const resources = files.flatMap((f) => yamlDocs(fs.readFileSync(f, 'utf8')) as unknown[]).filter(Boolean);
    expect(verdicts).toHaveLength(resources.length);
    const kinds = new Set(verdicts.map((v) => v.kind));
    for (const kind of ['Deployment', 'StatefulSet', 'Service', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'NetworkPolicy', 'SandboxTemplate', 'SandboxWarmPool']) {
      expect(kinds).toContain(kind);
    }
  });

  it.each(['base', 'overlays/kind', 'overlays/eks'])('kustomize build k8s/%s renders valid resources', async (target) => {
    const { stdout } = await run(requireTool('kustomize'), ['build', path.join(k8sDir, target)], { maxBuffer: 16 << 20 });
    const verdicts = await kubeconform([], stdout);
    expect(verdicts.filter((v) => v.status !== 'statusValid')).toEqual([]);
    expect(verdicts.length).toBeGreaterThan(15);
  });

  it('kubeconform rejects what the schemas forbid (the check is not vacuous)', async () => {
    const bad = path.join(workDir, 'bad.yaml');
    fs.writeFileSync(
      bad,
      [
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two, selector: {}, template: {spec: {containers: []}}}',
        'apiVersion: extensions.agents.x-k8s.io/v1beta1\nkind: SandboxWarmPool\nmetadata: {name: x}\nspec: {replicas: 1, sandboxTemplateRef: {name: x}, surprise: true}',
        'apiVersion: agents.x-k8s.io/v1beta1\nkind: Sandbox\nmetadata: {name: x}\nspec: {operatingMode: Paused, podTemplate: {spec: {containers: []}}}',
      ].join('\n---\n'),
    );
    const verdicts = await kubeconform([bad]);
    expect(verdicts.map((v) => [v.kind, v.status])).toEqual([
      ['Deployment', 'statusInvalid'],
      ['Sandbox', 'statusInvalid'],
      ['SandboxWarmPool', 'statusInvalid'],
    ]);
    expect(verdicts[0]!.msg).toMatch(/replicas/);
    expect(verdicts[1]!.msg).toMatch(/operatingMode/);
    expect(verdicts[2]!.msg).toMatch(/surprise/);
  });
});

describe('docker-compose.yml', () => {
  // `docker compose` through the CLI, with the compose plugin bin/setup-kube built (no engine needed).
  const compose = async (env: Record<string, string>) => {
    const dockerConfig = path.join(workDir, 'docker-config');
    fs.mkdirSync(path.join(dockerConfig, 'cli-plugins'), { recursive: true });
    fs.rmSync(path.join(dockerConfig, 'cli-plugins', 'docker-compose'), { force: true });
    fs.symlinkSync(requireTool('docker-compose'), path.join(dockerConfig, 'cli-plugins', 'docker-compose'));
    const { PATH, HOME } = process.env;
    return run('docker', ['compose', '--project-directory', repoRoot, '-f', path.join(repoRoot, 'docker-compose.yml'), '--env-file', '/dev/null', 'config', '--format', 'json'], {
      env: { PATH, HOME, DOCKER_CONFIG: dockerConfig, ...env },
    });
  };
  const secrets = { POSTGRES_PASSWORD: 'pw-test', LITELLM_MASTER_KEY: 'sk-test', BERTH_VAULT_KEY: 'a2V5', BERTH_ADMIN_API_KEY: 'admin-test-key-1234', VAULT_PROXY_CONTROL_TOKEN: 'token-test' };

  it('`docker compose config` accepts it; migrate completes before web and worker start', async () => {
    const { stdout } = await compose(secrets);
    const project = JSON.parse(stdout) as { services: Record<string, { depends_on?: Record<string, { condition: string }> }> };
    expect(Object.keys(project.services).sort()).toEqual(['litellm', 'migrate', 'postgres', 'temporal', 'web', 'worker']);
    for (const service of ['web', 'worker']) {
      expect(project.services[service]!.depends_on!.migrate).toMatchObject({ condition: 'service_completed_successfully' });
    }
    expect(project.services.migrate!.depends_on!.postgres).toMatchObject({ condition: 'service_healthy' });
  });

  it('names the missing secret when .env lacks one', async () => {
    const { POSTGRES_PASSWORD: _omitted, ...rest } = secrets;
    await expect(compose(rest)).rejects.toThrow(/set POSTGRES_PASSWORD in \.env/);
  });
});

describe('shell scripts', () => {
  it('pass shellcheck', async () => {
    const scripts = [
      ...['bin', '.ci', 'harnesses/images'].flatMap((dir) => fs.readdirSync(path.join(repoRoot, dir), { recursive: true, encoding: 'utf8' }).map((f) => path.join(repoRoot, dir, f))),
    ].filter((f) => fs.statSync(f).isFile() && /^#!.*\b(ba)?sh\b/.test(fs.readFileSync(f, 'utf8').split('\n', 1)[0]!));
    expect(scripts.map((f) => path.relative(repoRoot, f))).toEqual(expect.arrayContaining(['bin/kind-up.sh', 'bin/eks-up.sh', 'bin/setup-kube', 'bin/setup']));
    await run('shellcheck', scripts); // exits non-zero, with the findings, on any warning
  });
});
