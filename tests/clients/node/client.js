// node-postgres (pg, pg-cursor, pg-copy-streams) through copyguard: text
// results, parameters, cursors, COPY, a pool, refusals. Connection details
// and statements as in ../python/common.py.
'use strict';
const pg = require('pg');
const Cursor = require('pg-cursor');
const { to: copyTo } = require('pg-copy-streams');

const E = process.env;
const ALL_USERS = 'SELECT id, email, full_name, birth_date, phone, ssn, country, score FROM users ORDER BY id';
const UNCLASSIFIED = 'SELECT id, country, score FROM users ORDER BY id';
const ORDERS_OF = 'SELECT user_id, amount_cents, status FROM orders WHERE user_id = $1 ORDER BY id';
const COUNT_IN = 'SELECT count(*) FROM users WHERE country = $1';
const CLASSIFIED = 'SELECT id, email, full_name, birth_date, phone FROM users WHERE id <= 5 ORDER BY id';
const REFUSED = 'SELECT doc_number FROM identity_documents';

// Values as text, the way psql prints them (dates stay text).
pg.types.setTypeParser(pg.types.builtins.DATE, (v) => v);
const config = (port, user) => ({
  host: E.CG_HOST, port: Number(port), user, password: E.CG_PASSWORD, database: E.CG_DB,
});
const table = (rows) => rows.map((r) => r.map((v) => (v === null ? null : String(v))));

async function query(c, text, values) {
  return table((await c.query({ text, values, rowMode: 'array' })).rows);
}

function readCursor(c, text, values, n) {
  const cursor = c.query(new Cursor(text, values, { rowMode: 'array' }));
  return cursor.read(n).then(async (rows) => { await cursor.close(); return table(rows); });
}

function copyOut(c, sql) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const stream = c.query(copyTo(sql));
    stream.on('data', (d) => chunks.push(d));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString().split('\n').filter((l) => l).map((l) => l.split('\t'))));
    stream.on('error', reject);
  });
}

async function reads(port, user, queries) {
  const c = new pg.Client(config(port, user));
  await c.connect();
  const out = [];
  try {
    for (const [text, values] of queries) out.push(await query(c, text, values));
    await c.query('BEGIN');
    out.push(await readCursor(c, queries[0][0], queries[0][1], 4));
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
  const pool = new pg.Pool({ ...config(port, user), max: 1 });
  try {
    for (let i = 0; i < 3; i++) out.push(await query(pool, ...queries[queries.length - 1]));
  } finally {
    await pool.end();
  }
  return out;
}

async function standins() {
  const c = new pg.Client(config(E.CG_TAP, E.CG_DEV));
  await c.connect();
  try {
    const text = await query(c, CLASSIFIED, []);
    await c.query('BEGIN');
    const cursor = await readCursor(c, CLASSIFIED, [], 10);
    await c.query('COMMIT');
    const copy = await copyOut(c, `COPY (${CLASSIFIED}) TO STDOUT`);
    return { text, cursor, copy };
  } finally {
    await c.end();
  }
}

async function refusals() {
  const steps = [];
  let kind = null;
  const attempt = async (c, text) => {
    try {
      await c.query(text);
      steps.push('ok');
    } catch (e) {
      if (!(e instanceof pg.DatabaseError)) throw e;
      steps.push(e.code);
      kind = kind || e.constructor.name;
    }
  };
  const ok = async (c) => steps.push((await c.query({ text: "SELECT 'ok'", rowMode: 'array' })).rows[0][0]);
  const c = new pg.Client(config(E.CG_TAP, E.CG_DEV));
  await c.connect();
  try {
    await attempt(c, REFUSED);
    await ok(c);
    await c.query('BEGIN');
    await attempt(c, REFUSED);
    await attempt(c, 'SELECT 1');
    await c.query('ROLLBACK');
    await ok(c);
  } finally {
    await c.end();
  }
  const pool = new pg.Pool({ ...config(E.CG_TAP, E.CG_DEV), max: 1 });
  try {
    await attempt(pool, REFUSED);
    await ok(pool);
    const client = await pool.connect();
    await client.query('BEGIN');
    await attempt(client, REFUSED);
    await client.query('ROLLBACK');
    client.release();
    await ok(pool);
  } finally {
    await pool.end();
  }
  return { error_type: kind, steps };
}

(async () => {
  const aQueries = [[ALL_USERS, []], [ORDERS_OF, [7]]];
  const bQueries = [[UNCLASSIFIED, []], [ORDERS_OF, [3]], [COUNT_IN, ['FR']]];
  const result = {
    version: require('pg/package.json').version,
    a_direct: await reads(E.CG_DIRECT, E.CG_PROD, aQueries),
    a_proxy: await reads(E.CG_PROXY, E.CG_PROD, aQueries),
    b_direct: await reads(E.CG_DIRECT, E.CG_DEV, bQueries),
    b_guarded: await reads(E.CG_TAP, E.CG_DEV, bQueries),
    c: await standins(),
    d: await refusals(),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
})().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
