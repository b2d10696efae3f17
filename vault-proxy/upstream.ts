// Connections from the proxy to the world: keep-alive pools, TLS verified against the system CAs plus
// VAULT_EXTRA_CA_FILE (private upstreams, tests). The socket's address is pinned per request (egress.ts).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { systemCaPem } from './ca.ts';

export interface UpstreamAgents {
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
}

export function createUpstreamAgents(extraCaFile?: string): UpstreamAgents {
  let extra = '';
  if (extraCaFile) {
    try {
      extra = readFileSync(extraCaFile, 'utf8');
    } catch (err) {
      throw new Error(`VAULT_EXTRA_CA_FILE: cannot read ${extraCaFile}: ${(err as Error).message}`);
    }
    if (!extra.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`VAULT_EXTRA_CA_FILE: ${extraCaFile} holds no PEM certificate`);
  }
  const pool = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64, scheduling: 'lifo' as const };
  return {
    httpAgent: new http.Agent(pool),
    httpsAgent: new https.Agent({ ...pool, ca: `${systemCaPem()}\n${extra}`, rejectUnauthorized: true }),
  };
}
