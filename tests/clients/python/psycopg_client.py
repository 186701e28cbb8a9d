"""psycopg 3 through copyguard: text and binary results, server-side and
scrollable cursors, a pipeline, COPY, refusals, and a psycopg_pool
ConnectionPool."""

import psycopg
import psycopg_pool

from common import *


def connect(port, user, **kw):
    return psycopg.connect(host=HOST, port=port, user=user, password=PASSWORD, dbname=DB, **kw)


def reads(port, user, queries):
    out = []
    with connect(port, user) as c:
        for sql, params in queries:
            out.append(table(c.execute(sql, params).fetchall()))
            with c.cursor(binary=True) as cur:
                out.append(table(cur.execute(sql, params).fetchall()))
        with c.cursor(name="matrix_cursor", scrollable=True) as cur:
            cur.execute(queries[0][0], queries[0][1])
            cur.scroll(2)
            out.append(table(cur.fetchmany(3)))
        with c.pipeline():
            cursors = [c.execute(sql, params) for sql, params in queries]
        out.extend(table(cur.fetchall()) for cur in cursors)
        c.rollback()
    return out


def standins():
    with connect(TAP, DEV) as c:
        text = table(c.execute(CLASSIFIED).fetchall())
        with c.cursor(binary=True) as cur:
            binary = table(cur.execute(CLASSIFIED).fetchall())
        with c.cursor(name="standins") as cur:
            cur.itersize = 2
            declared = table(cur.execute(CLASSIFIED).fetchall())
        with c.cursor().copy(CLASSIFIED_COPY) as copy:
            copied = copy_rows(b"".join(bytes(b) for b in copy).decode())
    return {"text": text, "binary": binary, "cursor": declared, "copy": copied}


def refusals():
    steps, kind = [], None
    with connect(TAP, DEV, autocommit=True) as c:
        try:
            c.execute(REFUSED)
        except psycopg.Error as e:
            steps.append(e.sqlstate)
            kind = type(e).__name__
        steps.append(c.execute("SELECT 'ok'").fetchone()[0])
        try:
            with c.transaction():
                c.execute("SELECT 1")
                try:
                    c.execute(REFUSED)
                except psycopg.Error as e:
                    steps.append(e.sqlstate)
                try:
                    c.execute("SELECT 1")
                except psycopg.Error as e:
                    steps.append(e.sqlstate)
                raise psycopg.Rollback()
        except psycopg.Error as e:
            steps.append("transaction: " + str(e))
        steps.append(c.execute("SELECT 'ok'").fetchone()[0])
    conninfo = psycopg.conninfo.make_conninfo(host=HOST, port=TAP, user=DEV, password=PASSWORD, dbname=DB)
    with psycopg_pool.ConnectionPool(conninfo, min_size=1, max_size=1, open=True) as pool:
        with pool.connection() as c:
            try:
                c.execute(REFUSED)
            except psycopg.Error as e:
                steps.append(e.sqlstate)
        with pool.connection() as c:
            steps.append(c.execute("SELECT 'ok'").fetchone()[0])
        try:
            with pool.connection() as c:
                c.execute(REFUSED)
        except psycopg.Error as e:
            steps.append(e.sqlstate)
        with pool.connection() as c:
            steps.append(c.execute("SELECT 'ok'").fetchone()[0])
    return {"error_type": kind, "steps": steps}


a_queries = [(ALL_USERS, None), (ORDERS_OF.format(p="%s"), (7,))]
b_queries = [(UNCLASSIFIED, None), (ORDERS_OF.format(p="%s"), (3,)), (COUNT_IN.format(p="%s"), ("FR",))]
emit({
    "version": f"{psycopg.__version__}, psycopg_pool {psycopg_pool.__version__}",
    "a_direct": reads(DIRECT, PROD, a_queries),
    "a_proxy": reads(PROXY, PROD, a_queries),
    "b_direct": reads(DIRECT, DEV, b_queries),
    "b_guarded": reads(TAP, DEV, b_queries),
    "c": standins(),
    "d": refusals(),
})
