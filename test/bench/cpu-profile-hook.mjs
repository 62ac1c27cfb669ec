// Loaded with --import through NODE_OPTIONS (where --cpu-prof is not allowed) by benchmarks
// that profile the services they start: profiles the whole process and writes a .cpuprofile
// (Chrome DevTools, speedscope) into GANTRY_CPU_PROFILE_DIR when the process exits. The
// in-process inspector session answers synchronously, so the 'exit' handler can write it.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.GANTRY_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.argv[1]?.split('/').slice(-3).join('-') ?? 'node'}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
