#!/usr/bin/env python3
"""Seeds the fuzz corpora from the test suite: SQL statements of the
analysis fixtures and tests, the policies, and protocol traffic (startup
packets, frontend and backend frames, COPY streams) shaped like what
psql, pg_dump and drivers send and what PostgreSQL answers.

Usage: seed.py CORPUS_DIR   (writes CORPUS_DIR/<target>/seed-*)"""

import hashlib
import pathlib
import re
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus")


def put(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


# --- SQL -----------------------------------------------------------------
SQL_START = re.compile(
    r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|MERGE|COPY|DECLARE|FETCH|MOVE|PREPARE|EXECUTE|"
    r"CREATE|ALTER|DROP|SET|RESET|SHOW|BEGIN|COMMIT|ROLLBACK|DISCARD|TABLE|VALUES|EXPLAIN|"
    r"LISTEN|NOTIFY|GRANT|REVOKE|TRUNCATE|LOCK|DO|CALL|ANALYZE|VACUUM|CLOSE|DEALLOCATE|"
    r"START|SAVEPOINT|RELEASE)\b",
    re.I,
)
statements = set()
for f in (ROOT / "src/analysis/tests").glob("*.sql"):
    for s in f.read_text().split("-- next"):
        if s.strip():
            statements.add(s.strip())
rust_string = re.compile(r'r#"(.*?)"#|"((?:[^"\\]|\\.)*)"', re.S)
sources = list((ROOT / "src").rglob("*.rs")) + list((ROOT / "tests").rglob("*.rs"))
for f in sources:
    for raw, plain in rust_string.findall(f.read_text(errors="replace")):
        s = raw or plain.replace('\\"', '"').replace("\\n", "\n").replace("\\t", "\t")
        if SQL_START.match(s) and len(s) < 4000:
            statements.add(s.strip())
for s in statements:
    put("sql", s)

# --- shape: a control byte (variant, padding), then SQL text --------------
tricky = [
    "SELECT E'a\\nb' || $$x$$ || $q$y$q$ FROM users WHERE email = U&'\\0041' AND id = 1e3",
    "SELECT N'x', B'101', X'1F', u&'\\+000041' UESCAPE '!', e'\\x41\\101'",
    "SELECT 1 /* a /* nested */ b */ + 2 -- tail\n, 'it''s', \"Q\"\"x\"",
    "SELECT 'a'\n'b', 1.5e-3, .5, 1., 0x1F, 1_000, $1, :x, a->>'k', b @> c, d ~ 'é'",
    "SELECT café, naïve FROM \"users\" WHERE full_name = 'Zoë' ORDER BY 1 LIMIT 5",
    "SELECT email FROM users WHERE id = 48213; SELECT 2",
    "UPDATE orders SET amount_cents = amount_cents + -5 WHERE id = 7 RETURNING status",
    "SELECT 'users'::regclass, nextval('s'), current_setting('search_path')",
    "SELECT set_config('search_path', 'x', false) WHERE 1 = 1",
    "COPY users TO STDOUT (FORMAT csv, DELIMITER ',', FORCE_QUOTE *)",
    "COPY users FROM STDIN; 1\tx\n\\.\n",
    "EXPLAIN (ANALYZE = 0) SELECT email FROM users",
    "SELECT 1 = 1; EXPLAIN (ANALYZE = 1) SELECT * FROM users",
]
for s in list(statements)[:400] + tricky:
    for control in (0x00, 0x03, 0x41, 0x85):
        put("shape", bytes([control]) + s.encode())

# --- policies ------------------------------------------------------------
for f in (ROOT / "policies").glob("*.toml"):
    put("policy", f.read_text())
for f in sources:
    for raw, _ in rust_string.findall(f.read_text(errors="replace")):
        if "[classes." in raw or "[categories" in raw or "[columns" in raw or "[tables" in raw:
            put("policy", raw)


# --- protocol ------------------------------------------------------------
def frame(tag, body):
    return tag + struct.pack("!i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(minor, params):
    body = struct.pack("!HH", 3, minor) + b"".join(cstr(k) + cstr(v) for k, v in params) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


put("startup", startup(0, [("user", "alice"), ("database", "shop")]))
put("startup", startup(2, [("user", "dev"), ("database", "db"), ("application_name", "psql"),
                           ("options", "-c search_path=x"), ("_pq_.x", "1")]))
put("startup", startup(0, [("user", "r"), ("replication", "database")]))
put("startup", struct.pack("!ii", 8, 80877103))
put("startup", struct.pack("!ii", 8, 80877104))
put("startup", struct.pack("!iiii", 16, 80877102, 7, 1234))
put("startup", struct.pack("!ii", 8, 196608))

some = sorted(statements)[:40]
frontend = [
    frame(b"Q", cstr("SELECT 1")),
    frame(b"Q", cstr("COPY users TO STDOUT WITH (FORMAT csv, HEADER)")),
    frame(b"P", cstr("s1") + cstr("SELECT * FROM users WHERE id = $1") + struct.pack("!hi", 1, 23)),
    frame(b"B", cstr("") + cstr("s1") + struct.pack("!hh", 1, 0) + struct.pack("!hi", 1, 1) + b"7"
          + struct.pack("!hh", 1, 1)),
    frame(b"D", b"P" + cstr("")),
    frame(b"D", b"S" + cstr("s1")),
    frame(b"E", cstr("") + struct.pack("!i", 0)),
    frame(b"C", b"S" + cstr("s1")),
    frame(b"H", b""),
    frame(b"S", b""),
    frame(b"d", b"1\talice@example.com\n"),
    frame(b"c", b""),
    frame(b"f", cstr("aborted")),
    frame(b"F", struct.pack("!i", 1598) + struct.pack("!hh", 0, 0) + struct.pack("!h", 0)),
    frame(b"p", cstr("s3cret")),
    frame(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", 8) + b"n,,n=,r="),
    frame(b"X", b""),
]
backend = [
    frame(b"R", struct.pack("!i", 0)),
    frame(b"R", struct.pack("!i", 10) + cstr("SCRAM-SHA-256") + b"\0"),
    frame(b"R", struct.pack("!i", 11) + b"r=abc,s=xyz,i=4096"),
    frame(b"R", struct.pack("!i", 5) + b"salt"),
    frame(b"S", cstr("server_version") + cstr("15.4")),
    frame(b"K", struct.pack("!ii", 4242, 99)),
    frame(b"v", struct.pack("!ii", 0x30000, 1) + cstr("_pq_.x")),
    frame(b"Z", b"I"),
    frame(b"T", struct.pack("!h", 2) + cstr("id") + struct.pack("!ihihih", 16384, 1, 23, 4, -1, 0)
          + cstr("email") + struct.pack("!ihihih", 16384, 2, 25, -1, -1, 0)),
    frame(b"D", struct.pack("!h", 2) + struct.pack("!i", 1) + b"7" + struct.pack("!i", -1)),
    frame(b"C", cstr("SELECT 1")),
    frame(b"E", b"SERROR\0VERROR\0C42501\0Mpermission denied\0Dsecret detail\0\0"),
    frame(b"N", b"SNOTICE\0C00000\0Mhello\0\0"),
    frame(b"A", struct.pack("!i", 1) + cstr("chan") + cstr("payload")),
    frame(b"H", struct.pack("!bh", 0, 2) + struct.pack("!hh", 0, 0)),
    frame(b"d", b"1\tx\n"),
    frame(b"c", b""),
    frame(b"1", b""),
    frame(b"2", b""),
    frame(b"n", b""),
    frame(b"I", b""),
    frame(b"s", b""),
    frame(b"t", struct.pack("!hi", 1, 23)),
]
for f in frontend:
    put("messages", f[:1] + f[5:])
    put("frames", b"\x00" + f)
for f in backend:
    put("messages", f[:1] + f[5:])
    put("frames", b"\x01" + f)
for s in some:
    put("frames", b"\x00" + frame(b"Q", cstr(s)))
    put("frames", b"\x04" + frame(b"P", cstr("") + cstr(s) + b"\0\0") + frame(b"B", b"\0\0\0\0\0\0\0\0")
        + frame(b"D", b"P\0") + frame(b"E", b"\0\0\0\0\0") + frame(b"S", b""))
put("frames", b"\x00" + b"".join(frontend))
put("frames", b"\x81" + b"".join(backend))
put("frames", b"\x0b" + b"".join(backend[7:]) * 3)

# --- COPY streams ---------------------------------------------------------
# control bytes: format/header/framed, options, columns/plan, chunk size.
text_rows = b"1\talice@example.com\t2024-02-29\t+44 20 7946 0958\n2\t\\N\t1999-12-31\tb\\\\c\\td\n"
csv_rows = b'id,email\n1,"a,b@example.com"\n2,"say ""hi"""\n3,\n'
binary = (b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
          + struct.pack("!h", 2) + struct.pack("!i", 8) + struct.pack("!q", 42)
          + struct.pack("!i", 5) + b"x@y.z"
          + struct.pack("!h", 2) + struct.pack("!i", -1) + struct.pack("!i", 0)
          + struct.pack("!h", -1))
for a in range(0, 16):
    for c in (3, 8, 15):
        fmt = a % 3
        body = [text_rows, csv_rows, binary][fmt]
        put("copy", bytes([a, 0, c, 7]) + body)
        put("copy", bytes([a, 0x4d, c + 1, 0]) + body)
put("copy", bytes([0, 0, 2, 3]) + text_rows.replace(b"\t", b"\t", 1).split(b"\n")[0] + b"\t4\t5\t6\n")

print(f"seeded {OUT}: " + ", ".join(
    f"{d.name}={len(list(d.iterdir()))}" for d in sorted(OUT.iterdir()) if d.is_dir()))
