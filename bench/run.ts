// `npm run bench`: every benchmark, printed as one JSON document. Targets are in the issues and in
// the README; this prints figures and judges nothing.
import { benchContext } from './context.ts';
import { benchPlatform } from './platform.ts';
import { benchSandbox } from './sandbox.ts';
import { hostSpeedMs } from './stats.ts';
import { benchVault } from './vault.ts';

const os = await import('node:os');
// Figures on 2 cores depend on what else runs: the load average says how quiet the machine was.
const machine = {
  cpus: os.cpus().length,
  node: process.version,
  loadavg_at_start: os.loadavg().map((l) => Math.round(l * 100) / 100),
  host_speed_ms_at_start: hostSpeedMs(),
  host_speed_ms_at_end: 0,
};
const results: Record<string, unknown> = { machine };
results.sandbox = await benchSandbox();
results.platform = await benchPlatform();
results.context = await benchContext();
results.vault = await benchVault();
machine.host_speed_ms_at_end = hostSpeedMs();
console.log(JSON.stringify(results, null, 2));
process.exit(0);
