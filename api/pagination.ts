// Opaque cursors: base64url JSON of the last row's sort key. Newest-first lists sort by
// (created_at, id) descending; a cursor that does not decode is a 400 on the `cursor` field.
import { ApiError } from './errors.ts';

export interface TimeKey {
  createdAt: Date;
  id: string;
}

export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decode(cursor: string): unknown {
  try {
    return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

const badCursor = () => new ApiError(400, 'invalid_request', 'invalid cursor', [{ path: 'cursor', message: 'not a cursor from this list' }]);

/** Prisma `where` for the rows after a newest-first cursor (or {} without one). */
export function newestFirstAfter(cursor: string | undefined) {
  if (cursor === undefined) return {};
  const v = decode(cursor);
  if (!Array.isArray(v) || typeof v[0] !== 'number' || typeof v[1] !== 'string') throw badCursor();
  const createdAt = new Date(v[0]);
  return { OR: [{ createdAt: { lt: createdAt } }, { createdAt, id: { lt: v[1] } }] };
}

export const newestFirst = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];

/** Given limit+1 rows, the page and the cursor to the next one. */
export function pageOf<R extends TimeKey>(rows: R[], limit: number): { rows: R[]; next_cursor: string | null } {
  if (rows.length <= limit) return { rows, next_cursor: null };
  const page = rows.slice(0, limit);
  const last = page[page.length - 1]!;
  return { rows: page, next_cursor: encodeCursor([last.createdAt.getTime(), last.id]) };
}

/** Seq of an ascending-by-seq cursor. */
export function seqAfter(cursor: string): number {
  const v = decode(cursor);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw badCursor();
  return v;
}
