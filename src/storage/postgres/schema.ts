import { createHash } from 'node:crypto';
import type pg from 'pg';

/**
 * The tables of one instance (or one named queue of it) in PostgreSQL, and
 * the statements used per task, written once. Names are quoted identifiers
 * in the chosen schema: `"huey"."my-app_queue"`, `"huey"."my-app:emails_queue"`
 * for a named queue. PostgreSQL cuts identifiers at 63 bytes, so a longer
 * base name is replaced by a digest of it (`h_<16 hex>`).
 */
export interface Tables {
  readonly schema: string;
  /** The base of the table names, as the migrations table lists it. */
  readonly base: string;
  readonly queue: string;
  readonly schedule: string;
  readonly data: string;
  readonly counters: string;
  readonly dead: string;
  readonly leases: string;
  readonly status: string;
  readonly events: string;
  readonly records: string;
  /** The channel an enqueue notifies, and the one a stored result's id is sent on. */
  readonly queueChannel: string;
  readonly resultChannel: string;
  readonly sql: {
    readonly enqueue: string;
    readonly claim: string;
    readonly ack: string;
    readonly enqueueDue: string;
    readonly putResult: string;
    readonly settle: string;
    readonly writeRecord: string;
  };
}

const digest = (text: string, length = 16) => createHash('sha1').update(text).digest('hex').slice(0, length);

export function tableNames(schema: string, name: string, queue?: string): Tables {
  const wanted = queue === undefined ? name : `${name}:${queue}`;
  // The longest suffix is "_schedule" / "_counters" (9 bytes): the base gets the rest of 63.
  const base = Buffer.byteLength(wanted) <= 54 ? wanted : `h_${digest(wanted)}`;
  const table = (suffix: string) => `"${schema}"."${base}_${suffix}"`;
  const channel = digest(`${schema}.${wanted}`);
  const t = {
    schema,
    base,
    queue: table('queue'),
    schedule: table('schedule'),
    data: table('data'),
    counters: table('counters'),
    dead: table('dead'),
    leases: table('leases'),
    status: table('status'),
    events: table('events'),
    records: table('records'),
    queueChannel: `huey_q_${channel}`,
    resultChannel: `huey_r_${channel}`,
  };
  const notify = `pg_notify('${t.queueChannel}', '')`;
  return {
    ...t,
    sql: {
      // Rows keep the order given (ids are handed out in it), and the waiting workers are woken on commit.
      // $1: a JSON array of [data, priority].
      enqueue: `WITH added AS (
          INSERT INTO ${t.queue} (data, priority)
          SELECT item->>0, (item->>1)::float8 FROM json_array_elements($1::json) WITH ORDINALITY AS given(item, n) ORDER BY n
          RETURNING 1)
        SELECT ${notify} FROM (SELECT 1 FROM added LIMIT 1) AS any_added`,
      // A batch for one worker: the next rows in line that no other claim is taking right now.
      claim: `UPDATE ${t.queue} SET owner = $1 WHERE id IN (
          SELECT id FROM ${t.queue} WHERE owner IS NULL ORDER BY priority DESC, id LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id, data, priority`,
      // An ack, with the marks of the worker's runs started since its last step.
      ack: `WITH acked AS (DELETE FROM ${t.queue} WHERE id = $1 AND owner = $2 RETURNING 1),
        marked AS (UPDATE ${t.queue} SET started = true WHERE id = ANY($3::bigint[]) AND owner IS NOT NULL RETURNING 1)
        SELECT (SELECT count(*) FROM acked)::int AS acked`,
      // Due rows leave the schedule and enter the queue in one statement, in due order; rows another
      // scheduler is moving are skipped. Returns how many moved and when the next one left is due.
      enqueueDue: `WITH due AS (
          DELETE FROM ${t.schedule} WHERE id IN (
            SELECT id FROM ${t.schedule} WHERE eta <= $1 ORDER BY eta, id LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING id, data, eta, priority),
        moved AS (INSERT INTO ${t.queue} (data, priority) SELECT data, priority FROM due ORDER BY eta, id RETURNING 1),
        woke AS (SELECT ${notify} FROM (SELECT 1 FROM moved LIMIT 1) AS any_moved)
        SELECT (SELECT count(*) FROM moved)::int AS moved,
               (SELECT min(eta) FROM ${t.schedule} WHERE id NOT IN (SELECT id FROM due)) AS next,
               (SELECT count(*) FROM woke)::int AS woke`,
      putResult: `WITH stored AS (
          INSERT INTO ${t.data} (key, value, expires_at) VALUES ($1, $2, $3)
          ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
          RETURNING key)
        SELECT pg_notify('${t.resultChannel}', key) FROM stored`,
      // The results and acks of a worker's runs that ended in one turn: $1 the results as JSON
      // ([{ key, value, expires_at }]), $2 the acks ([{ receipt, owner }]), $3 the marks of runs started since.
      settle: `WITH results AS (SELECT * FROM json_to_recordset($1::json) AS r(key text, value text, expires_at bigint)),
        acks AS (SELECT * FROM json_to_recordset($2::json) AS a(receipt bigint, owner text)),
        stored AS (
          INSERT INTO ${t.data} (key, value, expires_at) SELECT key, value, expires_at FROM results
          ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
          RETURNING key),
        acked AS (DELETE FROM ${t.queue} q USING acks a WHERE q.id = a.receipt AND q.owner = a.owner RETURNING 1),
        marked AS (UPDATE ${t.queue} SET started = true WHERE id = ANY($3::bigint[]) AND owner IS NOT NULL RETURNING 1)
        SELECT pg_notify('${t.resultChannel}', key) FROM stored`,
      // Merged field by field into a record still live; a lapsed one starts afresh.
      writeRecord: `INSERT INTO ${t.records} AS r (id, fields, state, ended, expires_at) VALUES ($1, $2::jsonb, $3, $4, $5)
        ON CONFLICT (id) DO UPDATE SET
          fields = (CASE WHEN r.expires_at > $6 THEN r.fields ELSE '{}'::jsonb END) || excluded.fields,
          state = COALESCE(excluded.state, CASE WHEN r.expires_at > $6 THEN r.state END),
          ended = COALESCE(excluded.ended, CASE WHEN r.expires_at > $6 THEN r.ended END),
          expires_at = excluded.expires_at`,
    },
  };
}

/**
 * Each step makes the schema of one version from the one before; a base's
 * version is kept in `<schema>.huey_migrations`. Steps are only ever added.
 */
const STEPS: Array<(t: Tables) => string> = [
  (t) => `
    CREATE TABLE ${t.queue} (
      id bigserial PRIMARY KEY,
      data text NOT NULL,
      priority float8 NOT NULL DEFAULT 0,
      owner text,
      started boolean NOT NULL DEFAULT false,
      stalls int NOT NULL DEFAULT 0
    );
    CREATE INDEX ON ${t.queue} (priority DESC, id) WHERE owner IS NULL;
    CREATE INDEX ON ${t.queue} (owner) WHERE owner IS NOT NULL;
    CREATE TABLE ${t.schedule} (
      id bigserial PRIMARY KEY,
      data text NOT NULL,
      eta bigint NOT NULL,
      priority float8 NOT NULL DEFAULT 0
    );
    CREATE INDEX ON ${t.schedule} (eta, id);
    CREATE TABLE ${t.data} (key text PRIMARY KEY, value text NOT NULL, expires_at bigint);
    CREATE TABLE ${t.counters} (key text PRIMARY KEY, value bigint NOT NULL);
    CREATE TABLE ${t.dead} (id bigserial PRIMARY KEY, data text NOT NULL, reason text NOT NULL, at bigint NOT NULL);
    CREATE TABLE ${t.leases} (owner text PRIMARY KEY, deadline bigint NOT NULL);
    CREATE TABLE ${t.status} (worker text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE ${t.events} (id bigserial PRIMARY KEY, value text NOT NULL);
    CREATE TABLE ${t.records} (id text PRIMARY KEY, fields jsonb NOT NULL, state text, ended bigint, expires_at bigint NOT NULL);
    CREATE INDEX ON ${t.records} (ended DESC) WHERE state = 'failed';
  `,
];

/** The schema version this code expects. */
export const SCHEMA_VERSION = STEPS.length;

/**
 * Bring one base's tables to SCHEMA_VERSION, under an advisory lock held for
 * the transaction, so that processes starting at once migrate once. A base
 * at a later version (a newer huey-ts wrote it) is refused, not guessed at.
 * Returns the versions it went from and to.
 */
export async function migrate(pool: pg.Pool, t: Tables, dryRun = false): Promise<{ from: number; to: number }> {
  if (dryRun) {
    const exists = await pool.query('SELECT to_regclass($1) AS name', [`"${t.schema}".huey_migrations`]);
    if (!exists.rows[0]?.name) return { from: 0, to: SCHEMA_VERSION };
    const { rows } = await pool.query(`SELECT version FROM "${t.schema}".huey_migrations WHERE base = $1`, [t.base]);
    return { from: rows.length === 0 ? 0 : Number(rows[0].version), to: SCHEMA_VERSION };
  }
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`huey-ts migrations ${t.schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${t.schema}"`);
    await client.query(`CREATE TABLE IF NOT EXISTS "${t.schema}".huey_migrations (base text PRIMARY KEY, version int NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query(`SELECT version FROM "${t.schema}".huey_migrations WHERE base = $1`, [t.base]);
    const from = rows.length === 0 ? 0 : Number(rows[0].version);
    if (from > SCHEMA_VERSION) {
      throw new Error(`the tables of "${t.base}" in schema "${t.schema}" are at version ${from}, made by a newer huey-ts than this one (version ${SCHEMA_VERSION}): upgrade huey-ts`);
    }
    for (let version = from; version < SCHEMA_VERSION; version++) await client.query(STEPS[version]!(t));
    if (from < SCHEMA_VERSION) {
      await client.query(
        `INSERT INTO "${t.schema}".huey_migrations (base, version) VALUES ($1, $2) ON CONFLICT (base) DO UPDATE SET version = excluded.version, migrated_at = now()`,
        [t.base, SCHEMA_VERSION],
      );
    }
    await client.query('COMMIT');
    return { from, to: SCHEMA_VERSION };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
