// The conversation: user and assistant bubbles, tool calls as collapsible blocks with their output
// (live while the command runs), and a note for turns that failed or were aborted.
import { useState } from 'react';
import { prettyJson, toolSummary } from '../lib/format.ts';
import type { Block } from '../lib/transcript.ts';
import { RichText } from './rich-text.tsx';

function ToolBlock({ block }: { block: Extract<Block, { kind: 'tool' }> }) {
  const [open, setOpen] = useState(block.state === 'running');
  const label =
    block.state === 'error' ? (block.exitCode !== null ? `exit ${block.exitCode}` : 'error') : block.state === 'stopped' ? 'stopped' : block.state;
  return (
    <details className={`tool tool-${block.state}`} open={open} onToggle={(e) => setOpen(e.currentTarget.open)} data-call-id={block.callId}>
      <summary>
        <span className={`tool-state tool-state-${block.state}`} aria-hidden="true" />
        <span className="tool-name">{block.name}</span>
        <code className="tool-summary">{toolSummary(block.name, block.arguments)}</code>
        <span className="tool-label">{label}</span>
      </summary>
      <div className="tool-body">
        {block.name !== 'bash' && block.arguments ? (
          <>
            <p className="tool-heading">Arguments</p>
            <pre className="code">{prettyJson(block.arguments)}</pre>
          </>
        ) : null}
        <p className="tool-heading">Output</p>
        <pre className="code tool-output" aria-live={block.state === 'running' ? 'polite' : undefined}>
          {block.output || (block.state === 'running' ? 'Waiting for output…' : '(no output)')}
        </pre>
      </div>
    </details>
  );
}

export function Transcript({ blocks }: { blocks: Block[] }) {
  return (
    <>
      {blocks.map((b) => {
        switch (b.kind) {
          case 'user':
            return (
              <div key={b.key} className="msg msg-user" data-seq={b.message.seq}>
                <div className="bubble">{b.message.content}</div>
              </div>
            );
          case 'assistant':
            return (
              <div key={b.key} className={b.streaming ? 'msg msg-assistant streaming' : 'msg msg-assistant'}>
                <div className="bubble">
                  <RichText text={b.text} />
                  {b.streaming ? <span className="caret" aria-hidden="true" /> : null}
                </div>
              </div>
            );
          case 'tool':
            return <ToolBlock key={b.key} block={b} />;
          case 'turn-end':
            return (
              <p key={b.key} className={`turn-end turn-${b.end.outcome}`} role="note">
                {b.end.outcome === 'aborted' ? 'Turn aborted' : 'Turn failed'}
                {b.end.detail ? `: ${b.end.detail}` : '.'}
              </p>
            );
        }
      })}
    </>
  );
}
