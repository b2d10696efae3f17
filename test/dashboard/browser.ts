// Debian's Chromium driven by playwright-core (never a browser download), with every console error
// and uncaught page error of each page collected, so a test can assert there were none.
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../../bin/stack/berth.ts';
import { ARTIFACTS } from '../support/processes.ts';

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

/** With UPDATE_SCREENSHOTS=1 the screenshots replace docs/screenshots/; otherwise they go to test/.artifacts/. */
export const SCREENSHOT_DIR = process.env.UPDATE_SCREENSHOTS === '1' ? path.join(ROOT, 'docs/screenshots') : path.join(ARTIFACTS, 'screenshots');

export const LAPTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function assertDashboardBuilt(): void {
  if (!fs.existsSync(path.join(ROOT, 'dashboard/build/server/index.js'))) {
    throw new Error('dashboard/build is missing: run `npm run setup` (or `npm run dashboard:build`) first');
  }
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** Console errors and uncaught exceptions, "<url>: <text>". */
  errors: string[];
}

export async function openPage(browser: Browser, viewport = LAPTOP, context?: BrowserContext): Promise<WatchedPage> {
  const ctx = context ?? (await browser.newContext({ viewport, reducedMotion: 'reduce' }));
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`${page.url()}: ${e.message}`));
  return { page, context: ctx, errors };
}

export async function screenshot(page: Page, name: string, fullPage = false): Promise<void> {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`), fullPage });
}
