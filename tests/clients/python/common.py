"""Shared by the Python clients of copyguard's driver matrix: where to
connect, the statements every client runs, and value normalization."""

import datetime
import decimal
import json
import os
import sys

E = os.environ
HOST = E["CG_HOST"]
DIRECT = int(E["CG_DIRECT"])  # PostgreSQL itself
PROXY = int(E["CG_PROXY"])  # copyguard
TAP = int(E["CG_TAP"])  # copyguard, through the leak tap (guarded role only)
PROD = E["CG_PROD"]
DEV = E["CG_DEV"]
PASSWORD = E["CG_PASSWORD"]
DB = E["CG_DB"]

# (a) production role: everything, classified included.
ALL_USERS = "SELECT id, email, full_name, birth_date, phone, ssn, country, score FROM users ORDER BY id"
# (b) guarded role, unclassified data.
UNCLASSIFIED = "SELECT id, country, score FROM users ORDER BY id"
ORDERS_OF = "SELECT user_id, amount_cents, status FROM orders WHERE user_id = {p} ORDER BY id"
COUNT_IN = "SELECT count(*) FROM users WHERE country = {p}"
# (c) guarded role, classified columns: stand-ins.
CLASSIFIED = "SELECT id, email, full_name, birth_date, phone FROM users WHERE id <= 5 ORDER BY id"
CLASSIFIED_COPY = "COPY (SELECT id, email, full_name, birth_date, phone FROM users WHERE id <= 5 ORDER BY id) TO STDOUT"
# (d) refused.
REFUSED = "SELECT doc_number FROM identity_documents"


def norm(v):
    """A value as text, the way psql prints it."""
    if v is None:
        return None
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, (int, decimal.Decimal, str)):
        return str(v)
    return repr(v)


def table(rows):
    return [[norm(v) for v in r] for r in rows]


def copy_rows(text):
    """COPY text rows as lists of fields."""
    return [line.split("\t") for line in text.splitlines()]


def emit(result):
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
