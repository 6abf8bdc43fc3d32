// Runs two requests through node:http's server code in the master before it forks, so
// that workers inherit that code compiled (copy-on-write) instead of each compiling it
// lazily while its first request waits. The app itself is never called.
import http from 'node:http';
import net from 'node:net';

const REQUESTS =
  'GET /warm HTTP/1.1\r\nhost: localhost\r\n\r\n' + 'GET /warm HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n';

/** Best effort: false if loopback TCP is unavailable or the exchange does not finish in time. */
export async function warmHttp(timeoutMs = 2000): Promise<boolean> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    req.resume();
    res.end('warm\n');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as net.AddressInfo;
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      const timer = setTimeout(() => sock.destroy(new Error('timed out')), timeoutMs);
      let got = '';
      sock.setEncoding('latin1');
      sock.on('data', (d: string) => (got += d));
      sock.on('error', reject);
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(got);
      });
      sock.end(REQUESTS);
    });
    return reply.split('HTTP/1.1 200').length === 3;
  } catch {
    return false;
  } finally {
    // Closed before any fork: a worker must not inherit this listener.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
