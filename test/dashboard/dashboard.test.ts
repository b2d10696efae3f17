// The dashboard end to end in a real browser (Debian's Chromium) against the real stack: sign in,
// agents, sessions, and a live session whose reply and tool output stream in over SSE; abort,
// queued messages, and a reload in the middle of a streamed reply. No page logs a console error.
// The file runs its own Postgres: its lists and overview cover every session of the admin key's team,
// which other files' sessions (one failed on purpose) would change under it.
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startBerth, type Berth } from '../support/berth.ts';
import { startWeb as spawnWeb } from '../../bin/stack/berth.ts';
import { freePort } from '../../bin/stack/ports.ts';
import { ownPostgres, type OwnPostgres } from '../support/own-postgres.ts';
import { ARTIFACTS, TEST_ADMIN_KEY, testEnv } from '../support/processes.ts';
import { assertDashboardBuilt, launchBrowser, openPage, PHONE, screenshot, type WatchedPage } from './browser.ts';

let db: OwnPostgres;
let berth: Berth;
let browser: Browser;
let main: WatchedPage;
const pages: WatchedPage[] = [];

beforeAll(async () => {
  assertDashboardBuilt();
  db = await ownPostgres('dashboard');
  [berth, browser] = await Promise.all([startBerth({ name: 'dashboard', env: { DATABASE_URL: db.pg.url } }), launchBrowser()]);
  main = await openPage(browser);
  pages.push(main);
});
afterAll(async () => {
  await browser?.close();
  await berth?.stop();
  await db?.remove();
});
afterEach(() => {
  for (const p of pages) expect(p.errors, 'console errors').toEqual([]);
});

const go = (page: Page, path: string) => page.goto(new URL(path, berth.url).href);

/** Creates an agent through the form and returns its id. */
async function createAgent(page: Page, name: string, model: string): Promise<string> {
  await go(page, '/agents/new');
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Model').fill(model);
  await page.getByLabel('System prompt').fill('You are a careful assistant.');
  await page.getByRole('button', { name: 'Create agent' }).click();
  await page.waitForURL(/\/agents\/agt_[^/?]+\?saved=1$/);
  return /\/agents\/(agt_[^/?]+)/.exec(page.url())![1]!;
}

/** Starts a session from the agent's page and returns its id. */
async function startSession(page: Page, agentId: string): Promise<string> {
  await go(page, `/agents/${agentId}`);
  await page.getByRole('button', { name: 'Start session' }).click();
  await page.waitForURL(/\/sessions\/ses_[^/?]+$/);
  await page.getByText('Live', { exact: true }).waitFor();
  return /\/sessions\/(ses_[^/?]+)/.exec(page.url())![1]!;
}

// Clicks a status tab and waits for the page rendered with that filter: its tab marked current. The URL
// alone is not enough, it changes before React commits the new list. Each click waits for its navigation
// to land: a click while one is loading interrupts it, and Remix logs the aborted response as an error.
async function showStatus(page: Page, tab: string): Promise<void> {
  const tabs = page.getByRole('navigation', { name: 'Filter by status' });
  await tabs.getByRole('link', { name: tab, exact: true }).click();
  await tabs.locator('a[aria-current="page"]', { hasText: new RegExp(`^${tab}$`) }).waitFor();
}

async function send(page: Page, text: string): Promise<void> {
  await page.getByLabel('Message').fill(text);
  await page.getByLabel('Message').press('Enter');
}

/** How many times `text` occurs in the transcript's visible text. */
const occurrences = (page: Page, text: string) =>
  page.locator('.transcript').evaluate((el, t) => (el as HTMLElement).innerText.split(t).length - 1, text);

describe('the dashboard', () => {
  it('refuses a wrong API key with a message, then signs in with the right one', async () => {
    const { page } = main;
    await go(page, '/sessions');
    await page.waitForURL(/\/login\?next=%2Fsessions/);
    await screenshot(page, 'login');
    await page.getByLabel('API key').fill('not-the-key-0123456789');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('That API key was not accepted');
    expect(page.url()).toContain('/login');

    await page.getByLabel('API key').fill(TEST_ADMIN_KEY);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(/\/sessions$/);
    const cookie = (await main.context.cookies()).find((c) => c.name === 'berth_key');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    expect(await page.evaluate(() => document.cookie)).not.toContain('berth_key');
  });

  it('creates an agent, shows a validation error beside its field, edits it and lists it', async () => {
    const { page } = main;
    const model = berth.model('agent');
    await go(page, '/agents/new');
    await page.getByLabel('Name', { exact: true }).fill('Release helper');
    await page.getByLabel('Model').fill(model);
    await page.getByLabel('System prompt').fill('You help ship releases. Be brief.');
    await page.getByRole('group', { name: 'Tools' }).getByLabel('edit_file').uncheck();
    await page.getByRole('button', { name: 'Add variable' }).click();
    await page.getByLabel('Variable 1 name').fill('BAD NAME');
    await page.getByLabel('Variable 1 value').fill('x');
    await page.getByRole('button', { name: 'Create agent' }).click();
    const envError = page.locator('#env-message.field-error');
    await expect.poll(() => envError.textContent()).toMatch(/BAD NAME: .*environment variable name/);

    await page.getByLabel('Variable 1 name').fill('RELEASE_CHANNEL');
    await page.getByLabel('Variable 1 value').fill('stable');
    await page.getByRole('button', { name: 'Create agent' }).click();
    await page.waitForURL(/\/agents\/agt_[^/?]+\?saved=1$/);
    const id = /\/agents\/(agt_[^/?]+)/.exec(page.url())![1]!;
    const stored = (await berth.api.get(`/v1/agents/${id}`)).body;
    expect(stored).toMatchObject({ name: 'Release helper', model, env: { RELEASE_CHANNEL: 'stable' }, tools: ['bash', 'read_file', 'write_file', 'list_files'] });
    await page.getByLabel('Name', { exact: true }).fill('Release helper v2');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Release helper v2' }).waitFor();
    await page.getByText('Saved.').waitFor();
    await screenshot(page, 'agent-edit', true);
    await expect.poll(async () => (await berth.api.get(`/v1/agents/${id}`)).body.name).toBe('Release helper v2');

    await go(page, '/agents');
    await page.getByRole('link', { name: 'Release helper v2' }).waitFor();
    await screenshot(page, 'agents');
  });

  it('streams the reply token by token and a tool call whose output arrives while it runs', async () => {
    const { page } = main;
    const model = berth.model('stream');
    const answer = 'The loop printed three lines, one every 400 ms.';
    await berth.script(model, [
      { text: 'Running it now.', tool_calls: [{ id: 'call_loop', name: 'bash', arguments: { command: 'for i in 1 2 3; do echo out-$i; sleep 0.4; done' } }] },
      { text: answer, chunks: answer.split(/(?<= )/), chunk_delay_ms: 120 },
    ]);
    const sid = await startSession(page, await createAgent(page, 'Shell helper', model));
    await send(page, 'count to three slowly');

    // The command's output shows up while the command still runs.
    await page.waitForFunction(() => {
      const out = document.querySelector('details.tool-running .tool-output');
      return out?.textContent?.includes('out-1') && !out.textContent.includes('out-3');
    });
    await page.locator('details.tool-done', { hasText: 'out-3' }).waitFor();
    // The reply arrives in pieces: part of it is on screen before the rest.
    await page.waitForFunction((full) => {
      const t = document.querySelector('.msg-assistant.streaming')?.textContent ?? '';
      return t.length > 0 && t.length < full.length;
    }, answer);
    await page.locator('.msg-assistant:not(.streaming)', { hasText: answer }).waitFor();
    expect(await occurrences(page, answer)).toBe(1);
    await expect.poll(() => page.locator('.header-badges').textContent()).toContain('sandbox running');
    expect(await page.getByRole('link', { name: /Open workflow in Temporal/ }).getAttribute('href')).toContain(sid);
    await screenshot(page, 'session');

    const phone = await openPage(browser, PHONE, await browser.newContext({ viewport: PHONE, storageState: await main.context.storageState(), reducedMotion: 'reduce' }));
    pages.push(phone);
    await go(phone.page, `/sessions/${sid}`);
    await phone.page.locator('details.tool', { hasText: 'out-3' }).waitFor();
    await screenshot(phone.page, 'session-phone');
    await phone.context.close();
    pages.pop();
  });

  it('aborts a long tool call while the composer queues the next message', async () => {
    const { page } = main;
    const model = berth.model('abort');
    await berth.script(model, {
      rules: [
        { match: 'long', steps: [{ tool_calls: [{ id: 'call_sleep', name: 'bash', arguments: { command: 'echo started; sleep 120' } }] }, { text: 'never' }] },
        { match: 'next', steps: [{ text: 'Second turn answered.' }] },
      ],
    });
    const sid = await startSession(page, await createAgent(page, 'Sleeper', model));
    await send(page, 'run the long one');
    await page.locator('details.tool-running', { hasText: 'started' }).waitFor();

    await send(page, 'and the next one');
    await page.locator('.msg.pending', { hasText: 'and the next one' }).getByText('Queued').waitFor();

    await page.getByRole('button', { name: 'Abort turn' }).click();
    await page.getByText('Turn aborted').waitFor();
    await page.locator('details.tool-stopped').waitFor();
    await page.locator('.msg-assistant', { hasText: 'Second turn answered.' }).waitFor();
    expect(await occurrences(page, 'and the next one')).toBe(1);

    const events = await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' });
    expect(events.find((e) => e.type === 'turn.aborted')?.data.turn).toBe(1);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'End session' }).click();
    await page.locator('.header-badges').getByText('ended', { exact: true }).waitFor();
    expect(await page.getByLabel('Message').isDisabled()).toBe(true);
    expect((await berth.api.get(`/v1/sessions/${sid}`)).body.status).toBe('ended');
  });

  it('finds the whole transcript once after a reload in the middle of a streamed reply', async () => {
    const { page } = main;
    const model = berth.model('reload');
    const words = Array.from({ length: 40 }, (_, i) => (i < 39 ? `word${i + 1} ` : `word${i + 1}`));
    const answer = words.join('');
    await berth.script(model, [
      { tool_calls: [{ id: 'call_ls', name: 'bash', arguments: { command: 'echo before-the-reply' } }] },
      { text: answer, chunks: words, chunk_delay_ms: 100 },
    ]);
    const sid = await startSession(page, await createAgent(page, 'Talker', model));
    await send(page, 'talk for a while');
    await page.waitForFunction(() => (document.querySelector('.msg-assistant.streaming')?.textContent ?? '').includes('word5 '));

    await page.reload();
    await page.locator('.msg-assistant:not(.streaming)', { hasText: 'word40' }).waitFor({ timeout: 30_000 });
    expect(await occurrences(page, answer)).toBe(1);
    expect(await occurrences(page, 'talk for a while')).toBe(1);
    expect(await page.locator('details.tool').count()).toBe(1);
    expect(await occurrences(page, 'word1 ')).toBe(1);

    const stored = (await berth.api.get(`/v1/sessions/${sid}/messages`)).body.data as any[];
    expect(stored.at(-1)).toMatchObject({ role: 'assistant', content: answer });
 
    // The page's stream: the key cookie authorises it, and Last-Event-ID resumes after that event.
    const cookie = (await main.context.cookies()).find((c) => c.name === 'berth_key')!;
    const all = await berth.api.events(sid, { until: (e) => e.type === 'turn.completed' });
    const middle = all[Math.floor(all.length / 2)]!.id;
    const resumed = await fetch(`${berth.url}/sessions/${sid}/events`, { headers: { cookie: `berth_key=${cookie.value}`, 'last-event-id': String(middle) } });
    expect(resumed.status).toBe(200);
    const reader = resumed.body!.getReader();
    let text = '';
    while (!text.includes('event: turn.completed')) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(ids).toEqual(all.filter((e) => e.id > middle).map((e) => e.id));
    expect((await fetch(`${berth.url}/sessions/${sid}/events`)).status).toBe(401);
  });

  it('reconnects with Last-Event-ID after its web process dies mid-stream, and shows the reply once', async () => {
    const { page } = main;
    const model = berth.model('reconnect');
    const words = Array.from({ length: 80 }, (_, i) => (i < 79 ? `piece${i + 1} ` : `piece${i + 1}`));
    const answer = words.join('');
    await berth.script(model, [{ text: answer, chunks: words, chunk_delay_ms: 100 }]);
    const sid = await startSession(page, await createAgent(page, 'Reconnector', model));

    // A second web process of our own on a fixed port, so it can die and come back at the same address.
    const t = testEnv('dashboard-web2', { DATABASE_URL: db.pg.url });
    const port = await freePort();
    const logPath = path.join(ARTIFACTS, `${t.name}.web.log`);
    let web = await spawnWeb({ env: { ...t.env, PORT: String(port) }, port, logPath });
    try {
      await page.goto(`http://127.0.0.1:${port}/sessions/${sid}`);
      await page.getByText('Live', { exact: true }).waitFor();
      await send(page, 'keep talking');
      await page.waitForFunction(() => (document.querySelector('.msg-assistant.streaming')?.textContent ?? '').includes('piece5 '));
      process.kill(-web.pid, 'SIGKILL');
      await page.getByText('Reconnecting…').waitFor();
      web = await spawnWeb({ env: { ...t.env, PORT: String(port) }, port, logPath });
      await page.locator('.msg-assistant:not(.streaming)', { hasText: 'piece80' }).waitFor({ timeout: 30_000 });
      await page.getByText('Live', { exact: true }).waitFor();
      expect(await occurrences(page, answer)).toBe(1);
      expect(await occurrences(page, 'piece1 ')).toBe(1);
      expect(await occurrences(page, 'keep talking')).toBe(1);
    } finally {
      // Leave its page first: a stream the stopping process cuts is reported as an error, at times only
      // after the check below.
      await page.goto('about:blank');
      await web.stop();
    }
    // While the process was down, the browser reported the refused connections; nothing else.
    const outage = main.errors.splice(0);
    for (const e of outage) expect(e).toMatch(/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED_ENCODING|ERR_CONNECTION_RESET/);
  });

  it('lists sessions with status filters and search, and shows the overview', async () => {
    const { page } = main;
    await go(page, '/sessions');
    await page.locator('table tbody tr').first().waitFor();
    const all = await page.locator('table tbody tr').count();
    expect(all).toBeGreaterThanOrEqual(3);
    await screenshot(page, 'sessions');

    await showStatus(page, 'Ended');
    // Other tests in this file end sessions too: this one's session is among the ended ones.
    expect(await page.locator('table tbody').textContent()).toContain('Sleeper');
    const ended = await page.locator('table tbody tr').count();
    await showStatus(page, 'Failed');
    await page.getByText('No failed sessions').waitFor();
    await showStatus(page, 'Active');
    expect(await page.locator('table tbody tr').count()).toBeLessThanOrEqual(all - ended);

    await showStatus(page, 'All');
    expect(await page.locator('table tbody tr').count()).toBe(all);
    await page.getByLabel('Search sessions by session id or agent').fill('Sleeper');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=Sleeper/);
    await expect.poll(() => page.locator('table tbody tr').count()).toBe(1);
    await expect.poll(() => page.locator('table tbody').textContent()).toContain('Sleeper');

    // The API routes behind these pages: agent_id takes a comma-separated list; the model list is the gateway's.
    const agents = (await berth.api.get('/v1/agents?limit=100')).body.data as any[];
    const byAgents = await berth.api.get(`/v1/sessions?agent_id=${agents.map((a) => a.id).join(',')}`);
    expect(byAgents.body.data).toHaveLength(all);
    expect((await berth.api.get('/v1/sessions?agent_id=a,,b')).body.error.details[0].path).toBe('agent_id');
    expect((await berth.api.get('/v1/models')).body.data.map((m: any) => m.id)).toContain('berth-demo');

    await go(page, '/');
    await page.getByText('Active sessions').waitFor();
    const active = Number(await page.locator('.stat', { hasText: 'Active sessions' }).locator('.stat-value').textContent());
    expect(active).toBeGreaterThanOrEqual(2);
    expect(Number(await page.locator('.stat', { hasText: 'Turns, last hour' }).locator('.stat-value').textContent())).toBeGreaterThanOrEqual(4);
    await screenshot(page, 'overview');
  });

  it('shows a readable error for a session that does not exist, deletes an agent, and signs out', async () => {
    const { page } = main;
    const res = await go(page, '/sessions/ses_doesnotexist');
    expect(res?.status()).toBe(404);
    await page.getByRole('alert').getByText('Session not found').waitFor();
    expect(await page.locator('body').textContent()).not.toMatch(/at \w+ \(|node_modules/);
    main.errors.length = 0; // the 404 document itself is reported as a failed resource

    await go(page, '/agents');
    await page.getByRole('link', { name: 'Release helper v2' }).click();
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete agent' }).click();
    await page.waitForURL(/\/agents$/);
    await page.getByRole('link', { name: 'Shell helper' }).waitFor();
    expect(await page.getByRole('link', { name: 'Release helper v2' }).count()).toBe(0);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/login$/);
    await go(page, '/agents');
    await page.waitForURL(/\/login\?next=%2Fagents/);
  });
});
