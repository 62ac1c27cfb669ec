// Reads /sys/class/infiniband into the SysfsTree the parser takes, and runs `ethtool -S`.
// Only the files the parser uses are read: a host with 8 HCAs has ~500 of them.
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import type { SysfsTree } from './sysfs.js';

const DEVICE_FILES = ['hca_type', 'fw_ver', 'board_id'];
const PORT_FILES = ['link_layer', 'rate', 'state', 'phys_state'];

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function readInto(tree: Map<string, string>, root: string, rel: string): Promise<void> {
  try {
    tree.set(rel, await readFile(`${root}/${rel}`, 'utf8'));
  } catch {
    // Counters can vanish mid-read (device reset) or refuse reads (EINVAL): skip them.
  }
}

export async function readInfinibandSysfs(root = '/sys/class/infiniband'): Promise<SysfsTree> {
  const tree = new Map<string, string>();
  const jobs: Promise<void>[] = [];
  for (const dev of await list(root)) {
    for (const f of DEVICE_FILES) jobs.push(readInto(tree, root, `${dev}/${f}`));
    for (const port of await list(`${root}/${dev}/ports`)) {
      const base = `${dev}/ports/${port}`;
      for (const f of PORT_FILES) jobs.push(readInto(tree, root, `${base}/${f}`));
      for (const sub of ['counters', 'hw_counters']) {
        for (const c of await list(`${root}/${base}/${sub}`)) jobs.push(readInto(tree, root, `${base}/${sub}/${c}`));
      }
    }
  }
  await Promise.all(jobs);
  return tree;
}

/** Network interfaces backed by an RDMA device (/sys/class/infiniband/<dev>/device/net/*). */
export async function rdmaNetdevs(root = '/sys/class/infiniband'): Promise<string[]> {
  const out: string[] = [];
  for (const dev of await list(root)) out.push(...(await list(`${root}/${dev}/device/net`)));
  return [...new Set(out)];
}

export function runEthtoolStats(iface: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ethtool', ['-S', iface], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });
}
