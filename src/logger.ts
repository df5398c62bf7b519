/** What huey-ts logs through: `console` fits, as do pino and winston loggers. */
export interface Logger {
  debug(message: string, ...rest: unknown[]): void;
  info(message: string, ...rest: unknown[]): void;
  warn(message: string, ...rest: unknown[]): void;
  error(message: string, ...rest: unknown[]): void;
}

/**
 * The default for a producer: only warnings and errors, on stderr, so a web
 * app that enqueues tasks is not flooded. The consumer installs its own.
 */
export const quietLogger: Logger = {
  debug() {},
  info() {},
  warn: (message, ...rest) => console.warn(`huey: ${message}`, ...rest),
  error: (message, ...rest) => console.error(`huey: ${message}`, ...rest),
};
