// `npm run bench`: every benchmark, printed as one JSON document. Targets are in the issues and in
// the README; this prints figures and judges nothing.
import { benchPlatform } from './platform.ts';
import { benchSandbox } from './sandbox.ts';
import { benchVault } from './vault.ts';

const results: Record<string, unknown> = { machine: { cpus: (await import('node:os')).cpus().length, node: process.version } };
results.sandbox = await benchSandbox();
results.platform = await benchPlatform();
results.vault = await benchVault();
console.log(JSON.stringify(results, null, 2));
process.exit(0);
