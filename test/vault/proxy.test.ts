// The proxy with real TLS on both sides: stubs become values only for bound hosts, wherever a client puts
// them; a stub headed elsewhere is blocked and recorded; values coming back are scrubbed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { newStub } from '../../lib/vault.ts';
import type { SessionSecret } from '../../vault-proxy/swap.ts';
import { TunnelAgent, request, startProxy, startUpstream, type TestProxy, type Upstream } from './support.ts';
import { tempDir } from '../support/temp.ts';

const github: SessionSecret = {
  name: 'GITHUB_TOKEN', stub: newStub('GITHUB_TOKEN'), value: 'ghp_CANARY_real_github_7f3a9',
  hosts: ['localhost'], inject: ['header', 'basic_auth', 'query'],
};
const bodyKey: SessionSecret = {
  name: 'BODY_KEY', stub: newStub('BODY_KEY'), value: 'bk_CANARY_real_body_51c0',
  hosts: ['localhost'], inject: ['header', 'body'],
};
const elsewhere: SessionSecret = {
  name: 'OTHER_TOKEN', stub: newStub('OTHER_TOKEN'), value: 'ot_CANARY_never_sent_e21',
  hosts: ['api.example.invalid'], inject: ['header'],
};
const run = promisify(execFile);
const values = [github.value, bodyKey.value, elsewhere.value];

let tmp: ReturnType<typeof tempDir>;
let upstream: Upstream;
let proxy: TestProxy;
let agent: TunnelAgent;
let ca: string;

beforeAll(async () => {
  tmp = tempDir('berth-vault-proxy-');
  upstream = await startUpstream(tmp.dir);
  proxy = await startProxy(tmp.dir, {
    sessionId: 'ses_proxytest',
    secrets: [github, bodyKey, elsewhere],
    egress: { policy: { allow: ['localhost', '127.0.0.1/32'], deny: [] }, gatewayHosts: [], credentialHosts: [] },
  }, upstream.caFile);
  ca = proxy.caPem;
  agent = new TunnelAgent(proxy.port, ca);
});

afterAll(async () => {
  agent?.destroy();
  await proxy?.close();
  await upstream?.close();
  tmp?.remove();
});

const https = (path: string, host = 'localhost') => `https://${host}:${upstream.httpsPort}${path}`;
const lastSeen = () => upstream.seen.at(-1)!;

describe('stub swapping over a TLS tunnel', () => {
  it('swaps a Bearer header for a bound host and scrubs the value from the echoed response', async () => {
    const res = await request(https('/echo'), { agent, headers: { authorization: `Bearer ${github.stub}` } });
    expect(res.status).toBe(200);
    expect(lastSeen().headers.authorization).toBe(`Bearer ${github.value}`);
    expect(res.body).toContain(`Bearer ${github.stub}`);
    for (const v of values) expect(res.body).not.toContain(v);
    expect(proxy.recorder.records.at(-1)).toMatchObject({ decision: 'swapped', credentialName: 'GITHUB_TOKEN', host: 'localhost', path: '/echo', method: 'GET' });
  });

  it('swaps `token …` and custom headers', async () => {
    await request(https('/echo'), { agent, headers: { authorization: `token ${github.stub}`, 'x-api-key': github.stub } });
    expect(lastSeen().headers.authorization).toBe(`token ${github.value}`);
    expect(lastSeen().headers['x-api-key']).toBe(github.value);
  });

  it('swaps the password inside basic auth, decoding and re-encoding it', async () => {
    const basic = Buffer.from(`x-access-token:${github.stub}`).toString('base64');
    await request(https('/echo'), { agent, headers: { authorization: `Basic ${basic}` } });
    const sent = lastSeen().headers.authorization!;
    expect(Buffer.from(sent.replace(/^Basic /, ''), 'base64').toString()).toBe(`x-access-token:${github.value}`);
  });

  it('swaps the URL query, and records the path without it', async () => {
    const res = await request(https(`/echo?access_token=${github.stub}&x=1`), { agent });
    expect(res.status).toBe(200);
    expect(lastSeen().url).toBe(`/echo?access_token=${encodeURIComponent(github.value)}&x=1`);
    expect(proxy.recorder.records.at(-1)!.path).toBe('/echo');
  });

  it('swaps in bodies only for a credential that opted in', async () => {
    const body = JSON.stringify({ key: bodyKey.stub, token: github.stub });
    const res = await request(https('/echo'), { agent, method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(200);
    expect(JSON.parse(lastSeen().body)).toEqual({ key: bodyKey.value, token: github.stub });
    expect(lastSeen().headers['content-length']).toBe(String(Buffer.byteLength(lastSeen().body)));
  });

  it('rewrites a streamed (chunked) body across chunk boundaries', async () => {
    const piece = `${'x'.repeat(70_000)}${bodyKey.stub}`;
    const body = piece.repeat(20); // ~1.4 MB: over the in-memory limit, so it streams
    const res = await request(https('/echo'), { agent, method: 'PUT', body });
    expect(res.status).toBe(200);
    expect(lastSeen().body).toBe(`${'x'.repeat(70_000)}${bodyKey.value}`.repeat(20));
  });

  it('scrubs a real value the upstream reflects in headers and body', async () => {
    const res = await request(https('/reflect'), { agent, headers: { authorization: `Bearer ${github.stub}` } });
    expect(res.headers['x-echo-auth']).toBe(`Bearer ${github.stub}`);
    expect(res.body).toBe(`you sent: Bearer ${github.stub} and `);
  });

  it('passes a websocket-style upgrade through with its headers swapped', async () => {
    const socket = tls.connect({ socket: await connectTunnel(`localhost:${upstream.httpsPort}`), servername: 'localhost', ca });
    await new Promise((r) => socket.once('secureConnect', r));
    socket.write(`GET /ws HTTP/1.1\r\nhost: localhost\r\nconnection: Upgrade\r\nupgrade: echo\r\nauthorization: Bearer ${github.stub}\r\n\r\n`);
    const head = await readUntil(socket, '\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1.1 101/);
    socket.write('ping-through-the-tunnel');
    expect(await readUntil(socket, 'tunnel')).toBe('ping-through-the-tunnel');
    socket.destroy();
    expect(lastSeen().headers.authorization).toBe(`Bearer ${github.value}`);
  });
});

describe('stubs headed for unbound hosts', () => {
  it('blocks and records a stub sent to a host the credential is not bound to', async () => {
    const before = upstream.seen.length;
    const res = await request(https('/echo', '127.0.0.1'), { agent, headers: { authorization: `Bearer ${github.stub}` } });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error.details.rule).toBe('credential:GITHUB_TOKEN:unbound-host');
    expect(upstream.seen.length).toBe(before);
    expect(proxy.recorder.records.at(-1)).toMatchObject({ decision: 'blocked', credentialName: 'GITHUB_TOKEN', host: '127.0.0.1' });
  });

  it('blocks a stub in the query or path of an unbound host, and a credential bound elsewhere', async () => {
    expect((await request(https(`/x?t=${github.stub}`, '127.0.0.1'), { agent })).status).toBe(403);
    expect((await request(https(`/${github.stub}`, '127.0.0.1'), { agent })).status).toBe(403);
    const res = await request(https('/echo'), { agent, headers: { 'x-other': elsewhere.stub } });
    expect(res.status).toBe(403);
    expect(res.headers['x-berth-rule']).toBe('credential:OTHER_TOKEN:unbound-host');
  });

  it('stops an opted-in body stub on its way to an unbound host', async () => {
    const before = upstream.seen.length;
    const res = await request(https('/echo', '127.0.0.1'), { agent, method: 'POST', body: `{"k":"${bodyKey.stub}"}` });
    expect(res.status).toBe(403);
    expect(upstream.seen.length).toBe(before);
    expect(proxy.recorder.records.at(-1)).toMatchObject({ decision: 'blocked', credentialName: 'BODY_KEY' });
  });

  it('stops any stub in a body headed for an unbound host, opted in or not, streamed or not', async () => {
    const before = upstream.seen.length;
    const small = await request(https('/echo', '127.0.0.1'), { agent, method: 'POST', body: `token=${github.stub}` });
    expect([small.status, small.headers['x-berth-rule']]).toEqual([403, 'credential:GITHUB_TOKEN:unbound-host']);
    const big = await request(https('/echo', '127.0.0.1'), { agent, method: 'PUT', body: `${'y'.repeat(3 << 20)}${elsewhere.stub}` });
    expect(big.status).toBe(403);
    expect(upstream.seen.length).toBe(before);
    // To a bound host without body opt-in, the stub goes through unchanged and is not a block.
    const bound = await request(https('/echo'), { agent, method: 'POST', body: `token=${github.stub}` });
    expect([bound.status, lastSeen().body]).toEqual([200, `token=${github.stub}`]);
  });

  it('sends nothing to an unbound host without a stub (it is allowed by egress)', async () => {
    const res = await request(https('/echo', '127.0.0.1'), { agent, headers: { authorization: 'Bearer not-a-stub' } });
    expect(res.status).toBe(200);
    expect(lastSeen().headers.authorization).toBe('Bearer not-a-stub');
  });
});

describe('plain HTTP and real clients', () => {
  it('forwards absolute-form http:// requests with swaps', async () => {
    const res = await request(`http://127.0.0.1:${proxy.port}/ignored`, {
      path: `http://localhost:${upstream.httpPort}/echo?q=${github.stub}`,
      headers: { host: `localhost:${upstream.httpPort}` },
    });
    expect(res.status).toBe(200);
    expect(lastSeen().url).toBe(`/echo?q=${github.value}`);
  });

  it('answers a request that is not a proxy request with 400', async () => {
    const res = await request(`http://127.0.0.1:${proxy.port}/`);
    expect(res.status).toBe(400);
  });

  it('works for curl (HTTPS_PROXY, CA bundle with the Berth CA)', async () => {
    const { stdout: out } = await run('curl', ['-sS', '--fail-with-body', '-H', `Authorization: Bearer ${github.stub}`, https('/echo')], {
      env: { PATH: process.env.PATH, HTTPS_PROXY: proxy.url, CURL_CA_BUNDLE: proxy.caBundleFile },
    });
    expect(lastSeen().headers.authorization).toBe(`Bearer ${github.value}`);
    expect(out).toContain(github.stub);
    expect(out).not.toContain(github.value);
  });

  it('works for python urllib (REQUESTS_CA_BUNDLE-style SSL_CERT_FILE)', async () => {
    const script = `import urllib.request,os\nr=urllib.request.Request(os.environ['U'],headers={'X-Api-Key':os.environ['T']})\nprint(urllib.request.urlopen(r).read().decode())`;
    const { stdout: out } = await run('python3', ['-c', script], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, HTTPS_PROXY: proxy.url, SSL_CERT_FILE: proxy.caBundleFile, U: https('/echo'), T: github.stub },
    });
    expect(lastSeen().headers['x-api-key']).toBe(github.value);
    expect(out).not.toContain(github.value);
  });
});

function connectTunnel(authority: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(proxy.port, '127.0.0.1', () => s.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`));
    s.once('error', reject);
    void readUntil(s, '\r\n\r\n').then((head) => (head.startsWith('HTTP/1.1 200') ? resolve(s) : reject(new Error(head))));
  });
}

function readUntil(s: net.Socket, marker: string): Promise<string> {
  return new Promise((resolve) => {
    let acc = '';
    const onData = (c: Buffer) => {
      acc += c.toString('latin1');
      if (acc.includes(marker)) {
        s.off('data', onData);
        s.pause();
        resolve(acc);
      }
    };
    s.on('data', onData);
    s.resume();
  });
}
