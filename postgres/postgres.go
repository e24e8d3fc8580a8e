// Package postgres implements clusterchat.Store on PostgreSQL (pgx v5), the
// store shared by the chatserver processes of a cluster.
//
// Several processes append to the same conversations at once, so nothing
// here relies on process-local state: sequence numbers are allocated by an
// upsert on the convs row of each conversation (the row lock orders
// concurrent appenders and is held to commit, so seqs are contiguous and
// commit in order), and client message ids are deduplicated by a unique
// index. Every call is one statement (an implicit transaction) or one
// explicit transaction, so a failure leaves nothing half-written.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"clusterchat"
)

// Store is a clusterchat.Store on a PostgreSQL database. It is safe for
// concurrent use, and several Stores (in several processes) may share one
// database.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

var _ clusterchat.Store = (*Store)(nil)

// defaultConnectTimeout bounds how long a call waits for a connection when
// the DSN sets none: an unreachable database must turn into an EUNAVAILABLE
// reply within seconds, not hang the session.
const defaultConnectTimeout = 5 * time.Second

// Open connects to the database at dsn (a postgres:// URL or key=value
// string), creates or migrates the schema, and returns the Store. Several
// servers may Open the same database at once: migrations are serialised by
// an advisory lock.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "postgres: bad dsn: %v", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		// Every statement here is prepared once per connection (pgx caches
		// them) and looks rows up by key, so one generic plan fits all
		// calls. Left to choose, PostgreSQL kept making a custom plan of
		// the append statement on every call: BenchmarkAppend batch=1 took
		// 530-630 us, and 306-358 us with one generic plan.
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, mapErr("open", err)
	}
	s := &Store{pool: pool, logger: logger}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Networked implements clusterchat.NetworkStore: an Append can fail with its
// outcome unknown, so the server keys every message.
func (s *Store) Networked() bool { return true }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return mapErr("ping", s.pool.Ping(ctx))
}

// Close closes the pool; it waits for calls in progress to release their
// connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// SQLSTATE codes we act on.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeSerialization       = "40001"
	codeDeadlock            = "40P01"
	codeReadOnly            = "25006" // read_only_sql_transaction: a standby, or a primary being demoted
)

// pgCode returns the SQLSTATE of err, "" if it is not a server error.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// unavailable tells whether err means the database could not be reached or
// went away: the caller gets EUNAVAILABLE and may retry later.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case len(pe.Code) == 5 && pe.Code[:2] == "08": // connection exception
			return true
		case pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutting down, crashed, starting up
			return true
		case pe.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, net.ErrClosed),
		errors.Is(err, puddle.ErrClosedPool): // the Store was closed
		return true
	}
	// A connection that broke before the statement went out ("conn
	// closed" and the like) has no exported type; pgx marks it safe to retry.
	return pgconn.SafeToRetry(err)
}

// mapErr turns a driver error into what the Store interface promises:
// *clusterchat.Error as is, EUNAVAILABLE for an unreachable database, a
// wrapped plain error otherwise. op names the call for the logs.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *clusterchat.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if unavailable(err) || rolledBack(err) {
		// Every way of not reaching the database is transient except a
		// closed Store: a restart or a failover ends within seconds, and
		// the committer rides it out (clusterchat.IsTransient).
		return &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Message: "store unavailable: " + op + ": " + err.Error(),
			Transient: !errors.Is(err, puddle.ErrClosedPool)}
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// rolledBack tells whether err is a server error that undid the whole
// statement and should pass: a serialization failure or deadlock that
// outlived run's attempts, or a write that reached a server which is (still
// or no longer) read-only during a failover.
func rolledBack(err error) bool {
	switch pgCode(err) {
	case codeSerialization, codeDeadlock, codeReadOnly:
		return true
	}
	return false
}

// retryable tells whether a failed statement was rolled back whole and may
// simply be run again: a deadlock or serialisation failure, or a connection
// failure before anything was sent.
func retryable(err error) bool {
	switch pgCode(err) {
	case codeSerialization, codeDeadlock:
		return true
	}
	return pgconn.SafeToRetry(err)
}

// maxAttempts bounds the retries of one call.
const maxAttempts = 5

// run runs fn, again when it failed in a way that left nothing behind.
// Idempotent reads are also retried once after a connection failure: the
// pool may hand out a connection that the server closed (a restart), and
// the next one is fresh.
func (s *Store) run(ctx context.Context, op string, idempotent bool, fn func() error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = fn()
		if err == nil {
			return nil
		}
		again := retryable(err) || (idempotent && attempt == 1 && unavailable(err) && ctx.Err() == nil)
		if !again || ctx.Err() != nil {
			break
		}
		s.logger.Debug("postgres: retrying", "op", op, "attempt", attempt, "err", err)
	}
	return mapErr(op, err)
}
