import { expect } from 'vitest';
import type { SseEvent } from './api-client.ts';

/** Event ids strictly increase (so none repeats), and no message is announced twice. */
export function assertOrderedOnce(events: SseEvent[]): void {
  const ids = events.map((e) => e.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids).toEqual([...ids].sort((a, b) => a - b));
  const created = events.filter((e) => e.type === 'message.created').map((e) => e.data.seq);
  expect(new Set(created).size).toBe(created.length);
}
