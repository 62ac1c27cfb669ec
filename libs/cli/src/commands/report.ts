// `gantry report --since 30d`: the operations report (failures by XID and component, the
// exclusions' top-3 share, detection lead time and false alarms, retry chains, checkpoint
// throughput, NFS WRITE queueing) computed by the scheduler from its own records of the
// window. Tables by default, `-o json` the report message, `--html FILE` a page with charts.
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { OperationsReport } from '@gantry/proto';
import { UsageError } from '../errors.js';
import { flagParser, parseSeconds } from '../parse.js';
import type { Session } from '../session.js';
import { reportHtml } from './report-html.js';
import { reportView } from './report-view.js';

const MIN_SECONDS = 60;
const MAX_SECONDS = 90 * 86_400;

function windowSeconds(text: string): number {
  const s = parseSeconds(text);
  if (s < MIN_SECONDS || s > MAX_SECONDS) throw new UsageError(`--since must be from 1m to 90d, got "${text}"`);
  return s;
}

export function addReportCommand(program: Command, session: Session): void {
  program
    .command('report')
    .description('operations report of a window: failures by XID and component, exclusions (top-3 share), detection lead time and false alarms, retry chains, checkpoint throughput, NFS WRITE queueing')
    .option('--since <duration>', 'the window, back from now: 1m .. 90d', flagParser(windowSeconds), 30 * 86_400)
    .option('--html <file>', 'also write the report with charts to this self-contained HTML file')
    .action(async (o: { since: number; html?: string }) => {
      const report = await session.gantry().getOperationsReport(o.since);
      if (o.html) {
        try {
          writeFileSync(o.html, reportHtml(report));
        } catch (err) {
          throw new UsageError(`cannot write ${o.html}: ${(err as Error).message}`);
        }
      }
      if (session.json) session.printJson(OperationsReport.toJSON(report));
      else session.out(reportView(report) + (o.html ? `\nwritten: ${o.html}\n` : ''));
    });
}
