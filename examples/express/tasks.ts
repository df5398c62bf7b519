// The task the web app enqueues and the consumer runs.
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelExecution } from 'huey-ts';
import { huey } from './config.js';

/** The most rows a report may have. */
export const MAX_ROWS = 1000;

export interface Report {
  rows: number;
  /** The sum of the squares of 1..rows: the stand-in for a real report's contents. */
  total: number;
  builtAt: string;
}

/**
 * Build a report of `n` rows. A transient error (a database briefly away) is
 * retried twice, a second apart; a report over the limit fails for good at
 * once. The limit is checked here rather than in the web app to show how a
 * failed task reaches the client: `GET /reports/:id` answers 500 with its error.
 */
export const buildReport = huey.task({ retries: 2, retryDelay: 1, timeout: 60 })(async function buildReport(n: number): Promise<Report> {
  if (n > MAX_ROWS) throw new CancelExecution(`a report of ${n} rows is over the limit of ${MAX_ROWS}`, { retry: false });
  await sleep(100); // the real work: queries, rendering
  let total = 0;
  for (let row = 1; row <= n; row++) total += row * row;
  return { rows: n, total, builtAt: new Date().toISOString() };
});
