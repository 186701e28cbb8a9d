// pgx v4 through copyguard: the extended protocol with binary results,
// the simple protocol (text), named prepared statements, a batch, a
// DECLARE/FETCH cursor, COPY TO, refusals, and a pgxpool. Connection
// details and statements as in ../python/common.py; prints one JSON object.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgconn"
	"github.com/jackc/pgx/v4"
	"github.com/jackc/pgx/v4/pgxpool"
)

// pgxVersion is set at build time (-ldflags -X) from the Debian package.
var pgxVersion = "4"

const (
	allUsers       = "SELECT id, email, full_name, birth_date, phone, ssn, country, score FROM users ORDER BY id"
	unclassified   = "SELECT id, country, score FROM users ORDER BY id"
	ordersOf       = "SELECT user_id, amount_cents, status FROM orders WHERE user_id = $1 ORDER BY id"
	countIn        = "SELECT count(*) FROM users WHERE country = $1"
	classified     = "SELECT id, email, full_name, birth_date, phone FROM users WHERE id <= 5 ORDER BY id"
	classifiedCopy = "COPY (" + classified + ") TO STDOUT"
	refused        = "SELECT doc_number FROM identity_documents"
)

var ctx = context.Background()

type query struct {
	sql  string
	args []interface{}
}

func dsn(port, user string) string {
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s sslmode=disable",
		os.Getenv("CG_HOST"), port, user, os.Getenv("CG_PASSWORD"), os.Getenv("CG_DB"))
}

func connect(port, user string) *pgx.Conn {
	c, err := pgx.Connect(ctx, dsn(port, user))
	must(err)
	return c
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// norm renders a decoded value the way psql prints it.
func norm(v interface{}) interface{} {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return x
	case time.Time:
		return x.Format("2006-01-02")
	default:
		return fmt.Sprint(x)
	}
}

func table(rows pgx.Rows, err error) [][]interface{} {
	must(err)
	defer rows.Close()
	out := [][]interface{}{}
	for rows.Next() {
		vals, err := rows.Values()
		must(err)
		row := make([]interface{}, len(vals))
		for i, v := range vals {
			row[i] = norm(v)
		}
		out = append(out, row)
	}
	must(rows.Err())
	return out
}

func reads(port, user string, queries []query) [][][]interface{} {
	out := [][][]interface{}{}
	c := connect(port, user)
	defer c.Close(ctx)
	for _, q := range queries {
		// Extended protocol, binary results (pgx's statement cache).
		out = append(out, table(c.Query(ctx, q.sql, q.args...)))
		// Simple protocol, text results.
		simple := append([]interface{}{pgx.QuerySimpleProtocol(true)}, q.args...)
		out = append(out, table(c.Query(ctx, q.sql, simple...)))
	}
	_, err := c.Prepare(ctx, "matrix_stmt", queries[1].sql)
	must(err)
	out = append(out, table(c.Query(ctx, "matrix_stmt", queries[1].args...)))
	batch := &pgx.Batch{}
	for _, q := range queries {
		batch.Queue(q.sql, q.args...)
	}
	results := c.SendBatch(ctx, batch)
	for range queries {
		out = append(out, table(results.Query()))
	}
	must(results.Close())
	tx, err := c.Begin(ctx)
	must(err)
	_, err = tx.Exec(ctx, "DECLARE matrix_cursor SCROLL CURSOR FOR "+queries[0].sql)
	must(err)
	_, err = tx.Exec(ctx, "MOVE FORWARD 2 IN matrix_cursor")
	must(err)
	out = append(out, table(tx.Query(ctx, "FETCH 3 FROM matrix_cursor")))
	must(tx.Rollback(ctx))
	return out
}

func standins() map[string]interface{} {
	c := connect(os.Getenv("CG_TAP"), os.Getenv("CG_DEV"))
	defer c.Close(ctx)
	out := map[string]interface{}{}
	out["binary"] = table(c.Query(ctx, classified))
	out["text"] = table(c.Query(ctx, classified, pgx.QuerySimpleProtocol(true)))
	tx, err := c.Begin(ctx)
	must(err)
	_, err = tx.Exec(ctx, "DECLARE standins CURSOR FOR "+classified)
	must(err)
	cursor := [][]interface{}{}
	for {
		chunk := table(tx.Query(ctx, "FETCH 2 FROM standins"))
		if len(chunk) == 0 {
			break
		}
		cursor = append(cursor, chunk...)
	}
	must(tx.Commit(ctx))
	out["cursor"] = cursor
	var buf bytes.Buffer
	_, err = c.PgConn().CopyTo(ctx, &buf, classifiedCopy)
	must(err)
	copied := [][]string{}
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		copied = append(copied, strings.Split(line, "\t"))
	}
	out["copy"] = copied
	return out
}

// step records "ok" or the SQLSTATE of err, and returns the error's type.
func step(steps *[]string, err error) string {
	if err == nil {
		*steps = append(*steps, "ok")
		return ""
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		*steps = append(*steps, "unexpected: "+err.Error())
		return fmt.Sprintf("%T", err)
	}
	*steps = append(*steps, pgErr.Code)
	return "PgError"
}

func scalar(q interface {
	QueryRow(context.Context, string, ...interface{}) pgx.Row
}, sql string) error {
	var v interface{}
	return q.QueryRow(ctx, sql).Scan(&v)
}

func refusals() map[string]interface{} {
	steps := []string{}
	c := connect(os.Getenv("CG_TAP"), os.Getenv("CG_DEV"))
	kind := step(&steps, scalar(c, refused))
	step(&steps, scalar(c, "SELECT 'ok'"))
	tx, err := c.Begin(ctx)
	must(err)
	must(scalar(tx, "SELECT 1"))
	step(&steps, scalar(tx, refused))
	step(&steps, scalar(tx, "SELECT 1"))
	must(tx.Rollback(ctx))
	step(&steps, scalar(c, "SELECT 'ok'"))
	must(c.Close(ctx))

	cfg, err := pgxpool.ParseConfig(dsn(os.Getenv("CG_TAP"), os.Getenv("CG_DEV")))
	must(err)
	cfg.MaxConns = 1
	pool, err := pgxpool.ConnectConfig(ctx, cfg)
	must(err)
	defer pool.Close()
	conn, err := pool.Acquire(ctx)
	must(err)
	step(&steps, scalar(conn, refused))
	conn.Release()
	step(&steps, scalar(pool, "SELECT 'ok'"))
	step(&steps, pool.BeginFunc(ctx, func(tx pgx.Tx) error { return scalar(tx, refused) }))
	step(&steps, scalar(pool, "SELECT 'ok'"))
	return map[string]interface{}{"error_type": kind, "steps": steps}
}

func main() {
	prod, dev := os.Getenv("CG_PROD"), os.Getenv("CG_DEV")
	aQueries := []query{{allUsers, nil}, {ordersOf, []interface{}{7}}}
	bQueries := []query{{unclassified, nil}, {ordersOf, []interface{}{3}}, {countIn, []interface{}{"FR"}}}
	out := map[string]interface{}{
		"version":   pgxVersion,
		"a_direct":  reads(os.Getenv("CG_DIRECT"), prod, aQueries),
		"a_proxy":   reads(os.Getenv("CG_PROXY"), prod, aQueries),
		"b_direct":  reads(os.Getenv("CG_DIRECT"), dev, bQueries),
		"b_guarded": reads(os.Getenv("CG_TAP"), dev, bQueries),
		"c":         standins(),
		"d":         refusals(),
	}
	must(json.NewEncoder(os.Stdout).Encode(out))
}
