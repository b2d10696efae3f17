// A TCP relay between a client and the API server that a test can cut: cut() destroys every live
// connection (an open watch ends mid-stream, as when a load balancer or the network drops it) and,
// while blocked, refuses new ones until resume().
import net from 'node:net';

export interface Cutter {
  server: string;
  /** Connections accepted so far (a reconnecting watch shows up here). */
  readonly accepted: number;
  cut(options?: { block: boolean }): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startCutter(target: { host: string; port: number }): Promise<Cutter> {
  const live = new Set<net.Socket>();
  let blocked = false;
  let accepted = 0;
  const relay = net.createServer((downstream) => {
    if (blocked) return downstream.destroy();
    accepted++;
    const upstream = net.connect(target);
    for (const [a, b] of [[downstream, upstream], [upstream, downstream]] as const) {
      live.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        live.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const { port } = relay.address() as net.AddressInfo;
  return {
    server: `https://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    cut({ block } = { block: false }) {
      blocked = block;
      for (const socket of live) socket.destroy();
    },
    resume() {
      blocked = false;
    },
    close() {
      for (const socket of live) socket.destroy();
      return new Promise((resolve) => relay.close(() => resolve()));
    },
  };
}
