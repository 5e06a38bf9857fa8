// Structured JSON logs, one line per event, every field passed through the redactor.
import winston from 'winston';
import { redact, secretValues } from './redact.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export type LogFields = Record<string, unknown>;

export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

// Mutates in place: winston keys its level and output on Symbol properties of `info`.
const redactFormat = winston.format((info) => {
  info.message = secretValues.scrub(String(info.message));
  for (const key of Object.keys(info)) {
    if (key === 'level' || key === 'message') continue;
    info[key] = (redact({ [key]: info[key] }) as Record<string, unknown>)[key];
  }
  return info;
});

// winston runs the whole format (timestamp, redaction, JSON) for every call and lets the
// transport drop the lines below its level: each level is checked here first, so a debug line
// costs nothing at info (the operator logs one per reconciled key).
class WinstonLogger implements Logger {
  private readonly inner: winston.Logger;

  constructor(inner: winston.Logger) {
    this.inner = inner;
  }

  error(message: string, fields?: LogFields): void {
    if (this.inner.isLevelEnabled('error')) this.inner.error(message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    if (this.inner.isLevelEnabled('warn')) this.inner.warn(message, fields);
  }
  info(message: string, fields?: LogFields): void {
    if (this.inner.isLevelEnabled('info')) this.inner.info(message, fields);
  }
  debug(message: string, fields?: LogFields): void {
    if (this.inner.isLevelEnabled('debug')) this.inner.debug(message, fields);
  }
  child(fields: LogFields): Logger {
    return new WinstonLogger(this.inner.child(fields));
  }
}

export function createLogger(
  level: LogLevel = 'info',
  stream: NodeJS.WritableStream = process.stderr,
): Logger {
  return new WinstonLogger(
    winston.createLogger({
      level,
      format: winston.format.combine(
        winston.format.timestamp(),
        redactFormat(),
        winston.format.json(),
      ),
      transports: [new winston.transports.Stream({ stream })],
    }),
  );
}

/** A logger that drops everything: for unit tests and library use. */
export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  child() {
    return silentLogger;
  },
};
