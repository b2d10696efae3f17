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

/**
 * The config at `file` with its includes merged in, in LiteLLM's order: each entry relative to the
 * file that names them, an included file's own includes after those already pending, and a file
 * already merged skipped.
 */
export function loadGatewayConfig(file: string): GatewayConfig {
  const { include, ...config } = readConfig(file);
  const pending = includePaths(file, include);
  const merged = new Set([path.resolve(file)]);
  for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
    if (merged.has(next)) continue;
    merged.add(next);
    const { include: nested, ...included } = readConfig(next);
    pending.push(...includePaths(next, nested));
    for (const [key, value] of Object.entries(included)) {
      const base = config[key];
      config[key] = Array.isArray(base) && Array.isArray(value) ? [...base, ...value] : value;
    }
  }
  return config;
}

const readConfig = (file: string) => (YAML.parse(fs.readFileSync(file, 'utf8')) ?? {}) as GatewayConfig;

function includePaths(file: string, include: unknown = []): string[] {
  if (!Array.isArray(include)) throw new Error(`${file}: include must be a list of file paths`);
  return include.map((entry: string) => path.resolve(path.dirname(file), entry));
}

/** The config without the routes whose `api_key: os.environ/NAME` names a variable unset (or empty) in `env`. */
function servableRoutes(config: GatewayConfig, env: NodeJS.ProcessEnv): GatewayConfig {
  const keyVariable = (r: Route) => /^os\.environ\/(\w+)$/.exec(String(r.litellm_params?.api_key ?? ''))?.[1];
  const servable = (r: Route) => {
    const name = keyVariable(r);
    return name === undefined || !!env[name];
  };
  return { ...config, model_list: ((config.model_list ?? []) as Route[]).filter(servable) };
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
