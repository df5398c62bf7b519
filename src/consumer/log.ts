import { createWriteStream, type WriteStream } from 'node:fs';
import type { Logger } from '../logger.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const LABEL: Record<LogLevel, string> = { debug: 'DEBUG', info: 'INFO', warn: 'WARNING', error: 'ERROR' };

export interface ConsoleLogOptions {
  /** Lowest level written. @defaultValue 'info' */
  level?: LogLevel;
  /** Also append every line to this file. */
  logfile?: string;
  /** Only the message, without time and level (Huey's `--simple`). */
  simple?: boolean;
  /** Who is speaking, such as `Worker-2`; shown in each line. */
  source?: string;
}

/**
 * The consumer's log: one line per event in Huey's layout,
 * `[2026-01-02 03:04:05,678] INFO:huey:MainProcess: message`,
 * on stderr and optionally a file. Users who want JSON logs pass their own
 * `Logger` (pino, winston) to the Huey instance instead.
 */
export class ConsoleLog implements Logger {
  private readonly level: number;
  private readonly simple: boolean;
  private readonly source: string;
  private readonly file?: WriteStream;

  constructor(options: ConsoleLogOptions = {}) {
    this.level = RANK[options.level ?? 'info'];
    this.simple = options.simple ?? false;
    this.source = options.source ?? 'MainProcess';
    if (options.logfile) this.file = createWriteStream(options.logfile, { flags: 'a' });
  }

  debug(message: string): void {
    this.write('debug', message);
  }
  info(message: string): void {
    this.write('info', message);
  }
  warn(message: string): void {
    this.write('warn', message);
  }
  error(message: string): void {
    this.write('error', message);
  }

  /** Write a line that came from elsewhere (a worker thread or process) at its own level. */
  write(level: LogLevel, message: string, source = this.source): void {
    if (RANK[level] < this.level) return;
    const line = this.simple ? `${message}\n` : `[${timestamp()}] ${LABEL[level]}:huey:${source}: ${message}\n`;
    process.stderr.write(line);
    this.file?.write(line);
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.file ? this.file.end(resolve) : resolve()));
  }
}

function timestamp(): string {
  const d = new Date();
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())},${pad(d.getMilliseconds(), 3)}`;
}
