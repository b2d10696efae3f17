// A TCP proxy that can stop passing answers on: requests still reach the server, but from then on
// nothing it sends back reaches the client (dropped, not delayed). Stands in for a process that dies
// after its request went out and before the answer came back.
import net from 'node:net';

export async function tcpProxy(target: string) {
  const [host, port] = target.split(':');
  let dropping = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => dropping || client.write(chunk));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    dropAnswers(): void {
      dropping = true;
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
