"""SQLAlchemy 2 (on psycopg 3) through copyguard: reflection, the ORM,
its connection pool, refusals."""

import datetime

import sqlalchemy
from sqlalchemy import Date, Integer, String, create_engine, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from common import *


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String)
    full_name: Mapped[str] = mapped_column(String)
    birth_date: Mapped[datetime.date] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String)
    country: Mapped[str] = mapped_column(String)
    score: Mapped[int] = mapped_column(Integer)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String)


def engine(port, user):
    url = f"postgresql+psycopg://{user}:{PASSWORD}@{HOST}:{port}/{DB}"
    return create_engine(url, pool_size=1, max_overflow=0)


def reads(port, user, classified):
    out = []
    eng = engine(port, user)
    try:
        insp = inspect(eng)
        out.append(sorted(insp.get_table_names()))
        out.append([[c["name"], str(c["type"])] for c in insp.get_columns("orders")])
        out.append([fk["referred_table"] for fk in insp.get_foreign_keys("orders")])
        out.append([ix["name"] for ix in insp.get_indexes("users")])
        with Session(eng) as s:
            orders = s.scalars(select(Order).where(Order.user_id == 3).order_by(Order.id)).all()
            out.append([[o.user_id, o.amount_cents, o.status] for o in orders])
            users = s.execute(select(User.id, User.country, User.score).order_by(User.id)).all()
            out.append(table(users))
            if classified:
                out.append(table(s.execute(select(User.id, User.email, User.full_name).order_by(User.id)).all()))
        with eng.connect() as c:
            out.append(table(c.execute(text(COUNT_IN.format(p=":c")), {"c": "FR"}).all()))
    finally:
        eng.dispose()
    return out


def standins():
    eng = engine(TAP, DEV)
    try:
        with eng.connect() as c:
            core = table(c.execute(text(CLASSIFIED)).all())
        with Session(eng) as s:
            users = s.scalars(select(User).where(User.id <= 5).order_by(User.id)).all()
            orm = [[u.id, u.email, u.full_name, u.birth_date, u.phone] for u in users]
    finally:
        eng.dispose()
    return {"text": core, "orm": table(orm)}


def refusals():
    steps, kind = [], None
    eng = engine(TAP, DEV)
    try:
        with eng.connect() as c:
            try:
                c.execute(text(REFUSED))
            except DBAPIError as e:
                steps.append(e.orig.sqlstate)
                kind = type(e).__name__
            c.rollback()
            steps.append(c.execute(text("SELECT 'ok'")).scalar())
        with eng.connect() as c:
            c.execute(text("SELECT 1"))
            try:
                c.execute(text(REFUSED))
            except DBAPIError as e:
                steps.append(e.orig.sqlstate)
            try:
                c.execute(text("SELECT 1"))
            except DBAPIError as e:
                steps.append(e.orig.sqlstate)
            c.rollback()
            steps.append(c.execute(text("SELECT 'ok'")).scalar())
        # The pool: a refusal inside a transaction, then the connection is
        # returned and handed out again.
        try:
            with eng.begin() as c:
                c.execute(text(REFUSED))
        except DBAPIError as e:
            steps.append(e.orig.sqlstate)
        with eng.connect() as c:
            steps.append(c.execute(text("SELECT 'ok'")).scalar())
        try:
            with eng.connect() as c:
                c.execute(text(REFUSED))
        except DBAPIError as e:
            steps.append(e.orig.sqlstate)
        with eng.connect() as c:
            steps.append(c.execute(text("SELECT 'ok'")).scalar())
    finally:
        eng.dispose()
    return {"error_type": kind, "steps": steps}


emit({
    "version": sqlalchemy.__version__,
    "a_direct": reads(DIRECT, PROD, True),
    "a_proxy": reads(PROXY, PROD, True),
    "b_direct": reads(DIRECT, DEV, False),
    "b_guarded": reads(TAP, DEV, False),
    "c": standins(),
    "d": refusals(),
})
