import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Where listening ports are picked: below the kernel's ephemeral range. A port the OS picks
 * (listen on 0) comes from that range, which every outgoing connection also draws its local
 * port from: in the seconds between the pick and the service's bind (a process starting under
 * tsx), any of the suite's many connections could take it, and the service then failed to start.
 */
function pickRange(): [number, number] | undefined {
  let low = 32_768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the usual default
  }
  const from = 10_000;
  return low - from >= 2_000 ? [from, low] : undefined;
}

const range = pickRange();
/** Ports this process handed out: never handed out twice. */
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The OS's pick: a free port of the ephemeral range. */
function osPick(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** A TCP port free on 127.0.0.1 right now, outside the ephemeral range where there is room. */
export async function freePort(): Promise<number> {
  if (range) {
    for (let i = 0; i < 100; i++) {
      const port = range[0] + Math.floor(Math.random() * (range[1] - range[0]));
      if (handedOut.has(port) || !(await bindable(port))) continue;
      handedOut.add(port);
      return port;
    }
  }
  return osPick();
}
