// Just enough Markdown for model replies: ``` fenced blocks and `inline code`; everything else is
// plain text (never HTML from the model). An unclosed fence (text still streaming in) is code too.
import type { ReactNode } from 'react';

function inline(text: string, key: string): ReactNode[] {
  return text.split(/(`[^`\n]+`)/).map((part, i) =>
    part.length > 2 && part.startsWith('`') && part.endsWith('`') ? <code key={`${key}.${i}`}>{part.slice(1, -1)}</code> : part,
  );
}

export function RichText({ text }: { text: string }) {
  const out: ReactNode[] = [];
  const fence = /```[^\n`]*\n?([\s\S]*?)(?:```|$)/g;
  let last = 0;
  for (const m of text.matchAll(fence)) {
    if (m.index > last) out.push(...inline(text.slice(last, m.index).replace(/\n+$/, '\n'), `t${last}`));
    out.push(
      <pre key={`c${m.index}`} className="code">
        {m[1]!.replace(/\n$/, '')}
      </pre>,
    );
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(...inline(text.slice(last).replace(/^\n+/, ''), `t${last}`));
  return <>{out}</>;
}
