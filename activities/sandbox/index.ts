// Picks the sandbox provider for BERTH_SANDBOX_BACKEND.
import type { Config } from '../../lib/config.ts';
import { kubernetesOptionsFromConfig, kubernetesSandboxProvider } from './kubernetes.ts';
import { localOptionsFromConfig, localSandboxProvider } from './local.ts';
import type { SandboxProvider } from './provider.ts';

export function sandboxProvider(config: Config): SandboxProvider {
  switch (config.BERTH_SANDBOX_BACKEND) {
    case 'local':
      return localSandboxProvider(localOptionsFromConfig(config));
    case 'kubernetes':
      return kubernetesSandboxProvider(kubernetesOptionsFromConfig(config));
  }
}
