// A TCP proxy that can stop passing bytes on (dropped, not delayed): only the answers, so requests
// still reach the server and a process dies after its request went out but before the answer came
// back; or both ways, so a process dies before its request reached the server.
import net from 'node:net';

export async function tcpProxy(target: string) {
  const [host, port] = target.split(':');
  let dropping: 'none' | 'answers' | 'both' = 'none';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk: Buffer) => dropping === 'both' || upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => dropping !== 'none' || client.write(chunk));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    drop(what: 'answers' | 'both'): void {
      dropping = what;
    },
    async close(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
