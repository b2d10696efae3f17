// The real LiteLLM proxy of the test stack forwards to the scripted model: streaming, tool calls,
// usage, the model name without its `scripted/` prefix, and the demo route of the checked-in config.
// It routes a real provider only when that provider's key is set.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { describe, expect, inject, it } from 'vitest';
import YAML from 'yaml';
import { GATEWAY_CONFIG, LITELLM_BIN, TEST_GATEWAY_CONFIG } from '../../bin/stack/gateway.ts';
import { loadGatewayConfig, writeGatewayConfig } from '../../bin/stack/gateway-config.ts';
import { tempDirForTest } from '../support/temp.ts';
import { modelRequests, registerScript } from '../support/processes.ts';

const client = () => new OpenAI({ baseURL: `${inject('gatewayUrl')}/v1`, apiKey: inject('gatewayApiKey'), maxRetries: 0 });
const tools = [{ type: 'function' as const, function: { name: 'bash', parameters: { type: 'object', properties: { command: { type: 'string' } } } } }];

describe('LiteLLM gateway', () => {
  it('streams text and tool calls from the scripted model, with usage', async () => {
    await registerScript('gw-stream', [
      { chunks: ['Let me ', 'look.'], tool_calls: [{ name: 'bash', arguments: { command: 'ls' } }] },
      { text: 'Nothing there.' },
    ]);
    const stream = await client().chat.completions.create({
      model: 'scripted/gw-stream', stream: true, stream_options: { include_usage: true }, tools,
      messages: [{ role: 'user', content: 'what is in the workspace?' }],
    });
    let text = '';
    let args = '';
    let name = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      usage = chunk.usage ?? usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta.content ?? '';
      for (const tc of choice.delta.tool_calls ?? []) {
        name += tc.function?.name ?? '';
        args += tc.function?.arguments ?? '';
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(text).toBe('Let me look.');
    expect(name).toBe('bash');
    expect(JSON.parse(args)).toEqual({ command: 'ls' });
    expect(finish).toBe('tool_calls');
    expect(usage?.total_tokens).toBeGreaterThan(0);

    const seen = await modelRequests('gw-stream');
    expect(seen).toHaveLength(1);
    expect(seen[0]!.model).toBe('gw-stream');
    expect(seen[0]!.stream).toBe(true);
    expect(seen[0]!.tools?.[0]?.function.name).toBe('bash');
  });

  it('forwards a non-streaming second step with the tool result', async () => {
    await registerScript('gw-steps', [{ tool_calls: [{ name: 'bash', arguments: { command: 'pwd' } }] }, { text: 'You are in /workspace.' }]);
    const res = await client().chat.completions.create({
      model: 'scripted/gw-steps', tools,
      messages: [
        { role: 'user', content: 'where am I?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'bash', arguments: '{"command":"pwd"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '/workspace' },
      ],
    });
    expect(res.choices[0]!.message.content).toBe('You are in /workspace.');
    const last = (await modelRequests('gw-steps')).at(-1)!;
    expect(last.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_1', content: '/workspace' });
  });

  it('serves the demo model and refuses a key other than its master key', async () => {
    const res = await client().chat.completions.create({ model: 'berth-demo', messages: [{ role: 'user', content: 'hi' }] });
    expect(res.choices[0]!.message.content).toContain('berth-demo');
    const wrong = new OpenAI({ baseURL: `${inject('gatewayUrl')}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
    // Without a database LiteLLM knows only its master key; any other key is refused (400 "No connected db", or 401).
    const refused = await wrong.chat.completions.create({ model: 'berth-demo', messages: [{ role: 'user', content: 'hi' }] }).then(
      () => undefined,
      (err: InstanceType<typeof OpenAI.APIError>) => err.status,
    );
    expect([400, 401]).toContain(refused);
  });

  it('runs on CPython 3.12 or later, where a collection inside ContextVar.set cannot crash it (cpython gh-148891)', () => {
    const python = path.join(path.dirname(LITELLM_BIN), 'python');
    const [major, minor] = execFileSync(python, ['-c', 'import sys; print(*sys.version_info[:2])']).toString().trim().split(' ').map(Number);
    expect(major! * 100 + minor!).toBeGreaterThanOrEqual(312);
  });

  it('lists the demo model and no provider whose key is unset', async () => {
    const ids = (await client().models.list()).data.map((m) => m.id);
    expect(ids).toContain('berth-demo');
    // The suite's gateway has the environment the tests run in; on CI no provider key is set.
    for (const [provider, key] of Object.entries(PROVIDER_KEYS)) {
      expect(ids.some((id) => id.startsWith(`${provider}/`)), `${provider} with ${key} ${process.env[key] ? 'set' : 'unset'}`).toBe(!!process.env[key]);
    }
  });
});

const PROVIDER_KEYS = { openai: 'OPENAI_API_KEY', anthropic: 'ANTHROPIC_API_KEY', gemini: 'GEMINI_API_KEY', mistral: 'MISTRAL_API_KEY' };

describe('the gateway config (gateway-config.ts)', () => {
  const demoKey = { BERTH_MODEL_SERVER_KEY: 'k' };
  const routes = (env: NodeJS.ProcessEnv) => {
    const written = writeGatewayConfig(GATEWAY_CONFIG, env, tempDirForTest('berth-gw-config-'));
    // What LiteLLM reads: the same routes, its settings kept, secrets left as os.environ/ references.
    const onDisk = YAML.parse(fs.readFileSync(written.path, 'utf8'));
    expect(onDisk.model_list.map((r: { model_name: string }) => r.model_name)).toEqual(written.routes);
    expect(onDisk.general_settings.master_key).toBe('os.environ/LITELLM_MASTER_KEY');
    return written.routes;
  };

  it('routes each provider whose key is set, and the demo model', () => {
    expect(routes(demoKey)).toEqual(['berth-demo']);
    expect(routes({ ...demoKey, OPENAI_API_KEY: 'sk-x', MISTRAL_API_KEY: 'm' })).toEqual(['berth-demo', 'openai/*', 'mistral/*']);
    // PROVIDER_KEYS names every provider route of the checked-in config.
    const all = Object.fromEntries(Object.values(PROVIDER_KEYS).map((k) => [k, 'x']));
    expect(routes({ ...demoKey, ...all })).toEqual(['berth-demo', ...Object.keys(PROVIDER_KEYS).map((p) => `${p}/*`)]);
    expect(routes({ ...demoKey, ANTHROPIC_API_KEY: '' })).toEqual(['berth-demo']);
  });

  it('merges includes as LiteLLM does: lists extended, other settings from the included file', () => {
    const config = loadGatewayConfig(TEST_GATEWAY_CONFIG);
    expect((config.model_list as { model_name: string }[]).map((r) => r.model_name).slice(0, 3)).toEqual(['scripted/*', 'berth-demo', 'openai/*']);
    expect(config).not.toHaveProperty('include');
    expect(config.litellm_settings).toEqual({ drop_params: true });

    // Nested and repeated includes: LiteLLM's order (pending entries first), each file once.
    const dir = tempDirForTest('berth-gw-include-');
    const file = (name: string, include: string[]) =>
      fs.writeFileSync(path.join(dir, name), YAML.stringify({ include, model_list: [{ model_name: name }], general_settings: { from: name } }));
    file('a.yaml', ['b.yaml', 'c.yaml']);
    file('b.yaml', ['d.yaml', 'a.yaml']);
    file('c.yaml', ['b.yaml']);
    file('d.yaml', []);
    const nested = loadGatewayConfig(path.join(dir, 'a.yaml'));
    expect((nested.model_list as { model_name: string }[]).map((r) => r.model_name)).toEqual(['a.yaml', 'b.yaml', 'c.yaml', 'd.yaml']);
    expect(nested.general_settings).toEqual({ from: 'd.yaml' });
  });
});
