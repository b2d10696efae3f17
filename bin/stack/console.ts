// One short colored status line per process event on the supervisor's console.
const colors: Record<string, string> = {
  starting: '\x1b[2m', ready: '\x1b[32m', restarted: '\x1b[33m', crashed: '\x1b[31m', failed: '\x1b[31m',
  stopped: '\x1b[2m', skipped: '\x1b[33m', info: '\x1b[36m',
};
const useColor = process.stdout.isTTY && !process.env.NO_COLOR;

export function status(name: string, state: string, detail = ''): void {
  const paint = (code: string | undefined, s: string) => (useColor && code ? `${code}${s}\x1b[0m` : s);
  console.log(`${paint('\x1b[1m', name.padEnd(13))} ${paint(colors[state], state.padEnd(9))} ${detail}`.trimEnd());
}
