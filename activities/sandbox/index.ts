// Picks the sandbox provider for BERTH_SANDBOX_BACKEND. Each is imported only when chosen: the
// Kubernetes client alone adds about 75 MB to a worker that runs local sandboxes.
import type { Config } from '../../lib/config.ts';
import type { SandboxProvider } from './provider.ts';

export async function sandboxProvider(config: Config): Promise<SandboxProvider> {
  switch (config.BERTH_SANDBOX_BACKEND) {
    case 'local': {
      const { localOptionsFromConfig, localSandboxProvider } = await import('./local.ts');
      return localSandboxProvider(localOptionsFromConfig(config));
    }
    case 'kubernetes': {
      const { kubernetesOptionsFromConfig, kubernetesSandboxProvider } = await import('./kubernetes.ts');
      return kubernetesSandboxProvider(kubernetesOptionsFromConfig(config));
    }
  }
}
