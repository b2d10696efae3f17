// .env.example documents every variable Berth's processes and the embedded stack read.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../bin/stack/berth.ts';
import { stackSchema } from '../../bin/stack/config.ts';
import { configSchema } from '../../lib/config.ts';

describe('.env.example', () => {
  it('names every variable of lib/config.ts and bin/stack/config.ts', () => {
    const text = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
    const documented = new Set([...text.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]));
    const required = [...Object.keys(configSchema.shape), ...Object.keys(stackSchema.shape), 'LITELLM_GATEWAY_URL', 'OPENAI_API_KEY'];
    expect(required.filter((name) => !documented.has(name))).toEqual([]);
  });
});
