// Small display helpers shared by the pages.

const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
  ['second', 1_000],
];
const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** "3 minutes ago"; the absolute time goes in a title attribute. */
export function ago(iso: string, now = Date.now()): string {
  const diff = new Date(iso).getTime() - now;
  for (const [unit, ms] of units) {
    if (Math.abs(diff) >= ms || unit === 'second') return relative.format(Math.round(diff / ms), unit);
  }
  return iso;
}

export const absolute = (iso: string) => new Date(iso).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';

export const count = (n: number) => new Intl.NumberFormat('en').format(n);

export const plural = (n: number, one: string, many = `${one}s`) => `${count(n)} ${n === 1 ? one : many}`;

/** A tool call's arguments as the reader wants them: the command for bash, else compact JSON. */
export function toolSummary(name: string, args: string): string {
  try {
    const parsed = JSON.parse(args || '{}') as Record<string, unknown>;
    if (name === 'bash' && typeof parsed.command === 'string') return parsed.command;
    if (typeof parsed.path === 'string') return parsed.path;
    return JSON.stringify(parsed);
  } catch {
    return args;
  }
}

export function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** "agent x not found" → "Agent x not found." */
export function sentence(message: string): string {
  const s = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}
