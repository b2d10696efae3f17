// Tool output kept within BERTH_TOOL_OUTPUT_LIMIT characters: the head and the tail survive, the middle
// is replaced by a marker saying how much was cut. Memory stays bounded however much a command prints.

export const truncationMarker = (chars: number) => `\n[... ${chars} characters truncated ...]\n`;

export class BoundedOutput {
  private head = '';
  private tail = '';
  private dropped = 0;

  constructor(private readonly limit: number) {}

  append(text: string): void {
    const half = Math.floor(this.limit / 2);
    if (this.head.length < half) {
      const take = text.slice(0, half - this.head.length);
      this.head += take;
      text = text.slice(take.length);
    }
    if (!text) return;
    this.tail += text;
    if (this.tail.length > half) {
      this.dropped += this.tail.length - half;
      this.tail = this.tail.slice(this.tail.length - half);
    }
  }

  addDropped(chars: number): void {
    this.dropped += chars;
  }

  toString(): string {
    return this.dropped > 0 ? this.head + truncationMarker(this.dropped) + this.tail : this.head + this.tail;
  }
}

export function truncate(text: string, limit: number): string {
  const out = new BoundedOutput(limit);
  out.append(text);
  return out.toString();
}
