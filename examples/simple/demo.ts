// One command for the whole example: start a consumer, run the producer
// against it, then stop the consumer with SIGTERM as a process manager would.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const consumer = spawn(process.execPath, ['dist/cli/huey-consumer.js', 'examples/simple/main.huey', '--workers', '2', ...process.argv.slice(2)], {
  cwd: root,
  stdio: ['ignore', 'inherit', 'pipe'],
});
let log = '';
await new Promise<void>((resolve, reject) => {
  consumer.stderr.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    log += chunk.toString();
    if (log.includes('consumer running')) resolve();
  });
  consumer.once('exit', (code) => reject(new Error(`the consumer exited early with code ${code}`)));
});

const producer = spawn(process.execPath, ['--import', 'tsx', 'examples/simple/producer.ts'], { cwd: root, stdio: 'inherit' });
const [producerCode] = (await once(producer, 'exit')) as [number];

consumer.kill('SIGTERM');
const [consumerCode] = (await once(consumer, 'exit')) as [number];
process.exit(producerCode || consumerCode);
