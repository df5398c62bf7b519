// Start the web app: `npx tsx examples/express/server.ts` (PORT, default 3000).
// On SIGTERM (docker stop, systemd) or Ctrl-C it stops taking connections,
// lets the requests in flight finish, then closes the Huey's storage and exits 0.
import { once } from 'node:events';
import { app } from './app.js';
import { huey, storageName } from './config.js';

const port = Number(process.env.PORT ?? 3000);

const server = app.listen(port, (error) => {
  if (error) throw error;
  console.log(`express example listening on port ${port} (storage: ${storageName})`);
});

async function shutdown(signal: NodeJS.Signals): Promise<void> {
  console.log(`${signal}: closing the HTTP server`);
  // Should a request hang, give up after 10 s, well within the stop timeout (docker's is 10 s by default; compose sets 15 s).
  setTimeout(() => {
    console.error('requests still open after 10 s: exiting anyway');
    process.exit(1);
  }, 10_000).unref();
  const closed = once(server, 'close');
  server.close(); // no new connections; 'close' once the open requests are answered
  server.closeIdleConnections(); // keep-alive connections with no request in flight
  await closed;
  await huey.close(); // waits for enqueues in flight, then closes the storage
  console.log('express example stopped');
}

// Once each: a second Ctrl-C exits at once.
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
