// A TCP forwarder on a loopback port that a test can cut and restore: a network partition of
// one process (an agent) from a server, without root or firewall rules. Cutting destroys every
// open connection and stops accepting, so the client sees its server vanish; restoring accepts
// again.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.js';

export class TcpProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(readonly port: number, readonly targetPort: number) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const p = new TcpProxy(await freePort(), targetPort);
    await p.restore();
    return p;
  }

  get cut(): boolean {
    return this.server === undefined;
  }

  /** Accepts and forwards again. */
  async restore(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = createConnection({ host: '127.0.0.1', port: this.targetPort });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(this.port, '127.0.0.1', () => resolve()); });
    this.server = server;
  }

  /** Drops every connection and refuses new ones. */
  async partition(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  async stop(): Promise<void> {
    await this.partition();
  }
}
