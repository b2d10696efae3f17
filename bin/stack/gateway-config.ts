// The config the local LiteLLM proxy runs: a checked-in config with its `include:`s merged in, as
// LiteLLM merges them (lists extended, other values replaced), less every route whose API key is
// read from an unset variable. So a provider key in the environment adds that provider's models, and
// without one the model list does not offer hundreds of models that can only fail.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

type GatewayConfig = Record<string, unknown>;
interface Route {
  model_name: string;
  litellm_params?: { api_key?: unknown };
}

/** The config at `file` with its includes (relative to the file that names them) merged in. */
export function loadGatewayConfig(file: string): GatewayConfig {
  const { include = [], ...own } = (YAML.parse(fs.readFileSync(file, 'utf8')) ?? {}) as GatewayConfig;
  if (!Array.isArray(include)) throw new Error(`${file}: include must be a list of file paths`);
  return include.reduce<GatewayConfig>((merged, entry: string) => {
    const included = loadGatewayConfig(path.resolve(path.dirname(file), entry));
    for (const [key, value] of Object.entries(included)) {
      const base = merged[key];
      merged[key] = Array.isArray(base) && Array.isArray(value) ? [...base, ...value] : value;
    }
    return merged;
  }, own);
}

/** The routes whose `api_key: os.environ/NAME` names a variable set in `env` (or that need no variable). */
export function servableRoutes(config: GatewayConfig, env: NodeJS.ProcessEnv): GatewayConfig {
  const routes = (config.model_list ?? []) as Route[];
  const keyVar = (r: Route) => /^os\.environ\/(\w+)$/.exec(String(r.litellm_params?.api_key ?? ''))?.[1];
  return { ...config, model_list: routes.filter((r) => { const v = keyVar(r); return v === undefined || !!env[v]; }) };
}

/** Writes the config the gateway runs into `dir` and returns its path and route names. */
export function writeGatewayConfig(source: string, env: NodeJS.ProcessEnv, dir: string): { path: string; routes: string[] } {
  const config = servableRoutes(loadGatewayConfig(source), env);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'litellm.yaml');
  const header = `# Written by bin/stack/gateway-config.ts from ${source} at every start: edit that file instead.\n`;
  fs.writeFileSync(file, header + YAML.stringify(config));
  return { path: file, routes: (config.model_list as Route[]).map((r) => r.model_name) };
}
