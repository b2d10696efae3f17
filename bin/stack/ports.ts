import net from 'node:net';

/**
 * A port that was free a moment ago on 127.0.0.1 (the OS picks it), held back from the OS's next picks
 * until its user binds it: a connection to it is closed from the listening side first, which leaves
 * the port in TIME_WAIT for a minute. Linux does not hand a TIME_WAIT port to another bind(0) (the
 * Temporal dev server picks its internal ports that way, and so do tests), while our processes can
 * still bind it because they all listen with SO_REUSEADDR. The same trick as Temporal's GetFreePort.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((socket) => socket.destroy());
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      const probe = net.connect(port, '127.0.0.1');
      probe.on('error', () => {}); // the reset after the server side closes
      probe.on('close', () => srv.close(() => resolve(port)));
    });
  });
}

/** Fails with a clear message when something already listens on host:port. */
export function assertPortFree(port: number, what: string, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', () =>
      reject(new Error(`port ${port} for ${what} is in use; stop what holds it or choose another port (see .env.example)`)),
    );
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}
