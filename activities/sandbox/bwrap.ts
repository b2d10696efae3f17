// The bubblewrap command line of a local sandbox: every namespace unshared (user, pid, ipc, uts,
// mount, cgroup, network — no network at all, only lo), host /usr read-only, a handful of /etc files,
// fresh /proc, /dev and /tmp, the workspace read-write at /workspace, and a cleared environment.
import { lstatSync } from 'node:fs';
import path from 'node:path';

export interface SandboxLimits {
  memoryBytes: number;
  cpuSeconds: number;
  pids: number;
  fileBytes: number;
}

/** The /etc files every sandbox gets, read-only, from the provider's stub directory (`etcDir`). */
export const ETC_STUBS: Record<string, string> = {
  passwd: 'root:x:0:0:root:/workspace:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  group: 'root:x:0:\nnogroup:x:65534:\n',
  hosts: '127.0.0.1 localhost sandbox\n::1 localhost\n',
};

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SANDBOXD_IN_SANDBOX = '/opt/berth/sandboxd';

const baseEnv = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/workspace',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
};

/** Host /etc files a sandbox gets read-only (when present): CA certificates and the dynamic linker cache. */
const hostEtc = ['/etc/ssl/certs', '/etc/ssl/openssl.cnf', '/etc/ca-certificates', '/etc/alternatives', '/etc/ld.so.cache', '/etc/localtime'];

function isSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** /bin, /lib, /lib64 and /sbin: symlinks into /usr on a merged-usr host, read-only binds otherwise. */
const rootDirs = ['/bin', '/sbin', '/lib', '/lib64', '/lib32', '/libx32'].flatMap((dir) => {
  if (isSymlink(dir)) return ['--symlink', path.join('usr', path.basename(dir)), dir];
  return ['--ro-bind-try', dir, dir];
});

/** The vault proxy's door (vault-proxy/client.ts): a host dir bound read-only, and sandboxd's --proxy-bridge. */
export interface SandboxDoor {
  hostDir: string;
  sandboxDir: string;
  bridge: string;
}

export function bwrapArgs(
  env: Record<string, string>,
  paths: { workspace: string; etcDir: string },
  sandboxdBin: string,
  limits: SandboxLimits,
  door?: SandboxDoor,
): string[] {
  const setenv = Object.entries({ ...baseEnv, ...env }).flatMap(([name, value]) => {
    if (!ENV_NAME.test(name)) throw new Error(`invalid sandbox environment variable name: ${JSON.stringify(name)}`);
    return ['--setenv', name, value];
  });
  return [
    '--unshare-all', '--unshare-user', '--hostname', 'sandbox', '--new-session',
    '--clearenv', ...setenv,
    '--ro-bind', '/usr', '/usr', ...rootDirs,
    '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp',
    ...hostEtc.flatMap((p) => ['--ro-bind-try', p, p]),
    ...Object.keys(ETC_STUBS).flatMap((f) => ['--ro-bind', path.join(paths.etcDir, f), `/etc/${f}`]),
    '--bind', paths.workspace, '/workspace',
    '--ro-bind', sandboxdBin, SANDBOXD_IN_SANDBOX,
    ...(door ? ['--ro-bind', door.hostDir, door.sandboxDir] : []),
    '--chdir', '/workspace',
    SANDBOXD_IN_SANDBOX,
    '--listen', 'fd:{listen-fd}', // the socket `sandboxd launch` bound on the host, passed as an open fd
    '--workspace', '/workspace',
    '--cpu-seconds', String(limits.cpuSeconds),
    '--file-bytes', String(limits.fileBytes),
    ...(door ? ['--proxy-bridge', door.bridge] : []),
  ];
}
