"""asyncpg through copyguard (binary results throughout): type
introspection (`ANY($1::int[])`), `Cursor.forward`, a pool whose
connections are reset on release, COPY, refusals."""

import asyncio

import asyncpg

from common import *


async def connect(port, user):
    return await asyncpg.connect(host=HOST, port=port, user=user, password=PASSWORD, database=DB)


async def reads(port, user, queries):
    out = []
    c = await connect(port, user)
    try:
        for sql, params in queries:
            out.append(table(await c.fetch(sql, *params)))
        # Type introspection: an array parameter.
        out.append(table(await c.fetch("SELECT id FROM users WHERE id = ANY($1::int[]) ORDER BY id", [2, 3, 5])))
        out.append(table(await c.fetch("SELECT array_agg(id ORDER BY id) FROM users WHERE id < 4")))
        async with c.transaction():
            cur = await c.cursor(queries[0][0], *queries[0][1])
            await cur.forward(5)
            out.append(table(await cur.fetch(3)))
            out.append(table([await cur.fetchrow()]))
    finally:
        await c.close()
    # A pool of one connection, reset on every release.
    pool = await asyncpg.create_pool(host=HOST, port=port, user=user, password=PASSWORD,
                                     database=DB, min_size=1, max_size=1)
    try:
        for _ in range(3):
            async with pool.acquire() as c:
                await c.execute("SET application_name = 'matrix'")
                out.append(table(await c.fetch(queries[-1][0], *queries[-1][1])))
    finally:
        await pool.close()
    return out


async def standins():
    c = await connect(TAP, DEV)
    try:
        binary = table(await c.fetch(CLASSIFIED))
        async with c.transaction():
            cursor = table([r async for r in c.cursor(CLASSIFIED, prefetch=2)])
        chunks = []

        async def sink(data):
            chunks.append(bytes(data))

        await c.copy_from_query(CLASSIFIED, output=sink)
        copied = copy_rows(b"".join(chunks).decode())
    finally:
        await c.close()
    return {"binary": binary, "cursor": cursor, "copy": copied}


async def refusals():
    steps, kind = [], None
    c = await connect(TAP, DEV)
    try:
        try:
            await c.fetch(REFUSED)
        except asyncpg.PostgresError as e:
            steps.append(e.sqlstate)
            kind = type(e).__name__
        steps.append(await c.fetchval("SELECT 'ok'"))
        tx = c.transaction()
        await tx.start()
        try:
            await c.fetch(REFUSED)
        except asyncpg.PostgresError as e:
            steps.append(e.sqlstate)
        try:
            await c.fetch("SELECT 1")
        except asyncpg.PostgresError as e:
            steps.append(e.sqlstate)
        await tx.rollback()
        steps.append(await c.fetchval("SELECT 'ok'"))
    finally:
        await c.close()
    pool = await asyncpg.create_pool(host=HOST, port=TAP, user=DEV, password=PASSWORD,
                                     database=DB, min_size=1, max_size=1)
    try:
        async with pool.acquire() as c:
            try:
                await c.fetch(REFUSED)
            except asyncpg.PostgresError as e:
                steps.append(e.sqlstate)
        async with pool.acquire() as c:
            steps.append(await c.fetchval("SELECT 'ok'"))
        try:
            async with pool.acquire() as c:
                async with c.transaction():
                    await c.fetch(REFUSED)
        except asyncpg.PostgresError as e:
            steps.append(e.sqlstate)
        async with pool.acquire() as c:
            steps.append(await c.fetchval("SELECT 'ok'"))
    finally:
        await pool.close()
    return {"error_type": kind, "steps": steps}


async def main():
    a_queries = [(ALL_USERS, ()), (ORDERS_OF.format(p="$1"), (7,))]
    b_queries = [(UNCLASSIFIED, ()), (ORDERS_OF.format(p="$1"), (3,)), (COUNT_IN.format(p="$1"), ("FR",))]
    emit({
        "version": asyncpg.__version__,
        "a_direct": await reads(DIRECT, PROD, a_queries),
        "a_proxy": await reads(PROXY, PROD, a_queries),
        "b_direct": await reads(DIRECT, DEV, b_queries),
        "b_guarded": await reads(TAP, DEV, b_queries),
        "c": await standins(),
        "d": await refusals(),
    })


asyncio.run(main())
