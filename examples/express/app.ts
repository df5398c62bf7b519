// The web app. POST /reports enqueues a report and answers at once with the
// task's id; GET /reports/:id answers with the report once a consumer has built it.
import express, { type NextFunction, type Request, type Response } from 'express';
import { TaskError } from 'huey-ts';
import { huey } from './config.js';
import { buildReport, type Report } from './tasks.js';

const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const app = express();
app.disable('x-powered-by');
app.use(express.json());

// POST /reports {"n": 3} -> 202 {"id": "...", "status": "queued"}, Location: /reports/ID
app.post('/reports', async (req: Request, res: Response) => {
  const n: unknown = req.body?.n;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    res.status(400).json({ error: 'n must be a whole number over 0' });
    return;
  }
  // enqueue() resolves once the storage has the task: if it is down, this request fails, not a later one.
  const result = await buildReport.enqueue(n);
  res.status(202).location(`/reports/${result.id}`).json({ id: result.id, status: 'queued' });
});

// GET /reports/ID -> 200 with the report, 202 while it is pending, 500 with the error if the task failed.
app.get('/reports/:id', async (req: Request<{ id: string }>, res: Response) => {
  const { id } = req.params;
  if (!TASK_ID.test(id)) {
    res.status(404).json({ error: 'no such report' });
    return;
  }
  try {
    // preserve: true leaves the result in the store, so every GET can read it (resultTtl expires it).
    const report = await huey.result<Report>(id).get({ preserve: true });
    if (report === undefined) res.status(202).json({ id, status: 'pending' });
    else res.json({ id, status: 'done', report });
  } catch (error) {
    if (!(error instanceof TaskError)) throw error;
    res.status(500).json({ id, status: 'failed', error: error.remote.message });
  }
});

// GET /health -> 200 when the storage answers within 2 s, else 503 (docker-compose's healthcheck).
app.get('/health', async (_req: Request, res: Response) => {
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the storage did not answer within 2 s')), 2000)));
    const pending = await Promise.race([huey.pendingCount(), timeout]);
    res.json({ status: 'ok', pending });
  } catch (error) {
    res.status(503).json({ status: 'unavailable', error: error instanceof Error ? error.message : String(error) });
  } finally {
    clearTimeout(timer);
  }
});

// Errors as JSON: express.json() gives a body that is not JSON a status of 400.
app.use((error: Error & { status?: number }, _req: Request, res: Response, _next: NextFunction) => {
  const status = error.status ?? 500;
  if (status >= 500) console.error(error);
  res.status(status).json({ error: error.message });
});
