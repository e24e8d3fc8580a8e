// Package sqlite implements clusterchat.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), for a server that runs as one process.
//
// The pragmas, and why: WAL with synchronous=NORMAL makes a commit an append
// to the log without an fsync that is still durable against a killed process
// (only a power loss can drop the last commits) and lets readers run beside
// the writer; wal_autocheckpoint=0 because a checkpoint on the write path
// stalls commits for tens of milliseconds, so a background goroutine does
// PASSIVE checkpoints on its own connection instead; busy_timeout because our
// own connections briefly lock each other; foreign_keys so that memberships,
// friendships and tokens cannot point at missing rows.
//
// Concurrency: every write goes through one connection under Store.wmu, so
// writes are serialized and the store can keep the last seq of each
// conversation and the last message id in memory; reads use a separate pool
// of connections and see the last committed state. Only one process may
// open a database file at a time (it owns the in-memory counters).
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"clusterchat"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ clusterchat.Store = (*Store)(nil)

// Checkpoint policy: the background checkpointer looks at the WAL this
// often, and checkpoints when a second has passed since the last one or the
// WAL has grown past walBig, whichever comes first.
const (
	checkpointPoll  = 100 * time.Millisecond
	checkpointEvery = time.Second
	walBig          = 32 << 20
)

// Store is a clusterchat.Store on one SQLite file. It is safe for concurrent
// use by the goroutines of one process.
type Store struct {
	path   string
	logger *slog.Logger

	wdb *sql.DB // the one write connection
	rdb *sql.DB // read-only pool
	cdb *sql.DB // the checkpointer's connection

	// wmu serializes every write and guards the counters below, which are
	// only valid because nobody else writes the file.
	wmu    sync.Mutex
	seqs   map[string]int64 // conversation -> last committed seq, loaded on first use
	lastID int64            // last committed message id

	w writeStmts
	r readStmts

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	quit      chan struct{}
	done      chan struct{}
}

// writeStmts are prepared on the write connection and reused by every
// transaction (tx.StmtContext finds them already prepared on it).
type writeStmts struct {
	insMsg, selCMID, maxSeq, setLastID, insCursor *sql.Stmt
	markDelivered, markRead, raiseRead            *sql.Stmt
}

// readStmts are prepared lazily on each read connection by database/sql and
// reused.
type readStmts struct {
	user, friends, group, members, userGroups, role *sql.Stmt
	since, before, convs, undelivered, tokenUser    *sql.Stmt
	lastSeq                                         *sql.Stmt
}

// msgCols is the column list every message query returns, in scanMsg order.
const msgCols = "id, conv, seq, sender, sender_name, recipient, group_id, body, ctime, ts, cmid"

// migrations are applied in order, each in its own transaction; PRAGMA
// user_version records how many have run. Append only: never edit one that
// has shipped.
var migrations = []string{
	`CREATE TABLE users (
		id        INTEGER PRIMARY KEY AUTOINCREMENT, -- AUTOINCREMENT: an id is never reused
		name      TEXT NOT NULL UNIQUE,
		pass_hash TEXT NOT NULL
	);
	CREATE TABLE friends (
		user_id   INTEGER NOT NULL REFERENCES users(id),
		friend_id INTEGER NOT NULL REFERENCES users(id),
		PRIMARY KEY (user_id, friend_id)
	) WITHOUT ROWID;
	CREATE TABLE chat_groups (
		id      INTEGER PRIMARY KEY AUTOINCREMENT,
		name    TEXT NOT NULL UNIQUE,
		descr   TEXT NOT NULL,
		creator INTEGER NOT NULL REFERENCES users(id)
	);
	CREATE TABLE members (
		group_id INTEGER NOT NULL REFERENCES chat_groups(id),
		user_id  INTEGER NOT NULL REFERENCES users(id),
		role     TEXT NOT NULL,
		PRIMARY KEY (group_id, user_id)
	) WITHOUT ROWID;
	CREATE INDEX members_by_user ON members(user_id, group_id);
	-- Keyed by (conv, seq): Since and Before are range scans of the primary
	-- key, and an insert touches one b-tree plus the cmid index.
	CREATE TABLE messages (
		conv        TEXT NOT NULL,
		seq         INTEGER NOT NULL,
		id          INTEGER NOT NULL,
		sender      INTEGER NOT NULL,
		sender_name TEXT NOT NULL,
		recipient   INTEGER NOT NULL,
		group_id    INTEGER NOT NULL,
		body        TEXT NOT NULL,
		ctime       TEXT NOT NULL,
		ts          INTEGER NOT NULL, -- unix milliseconds
		cmid        TEXT NOT NULL,
		PRIMARY KEY (conv, seq)
	) WITHOUT ROWID;
	CREATE UNIQUE INDEX messages_cmid ON messages(sender, cmid) WHERE cmid != '';
	-- A row per (user, conversation) the user takes part in: created with
	-- the group membership, or with the first message of a 1:1 conversation.
	CREATE TABLE cursors (
		user_id   INTEGER NOT NULL,
		conv      TEXT NOT NULL,
		delivered INTEGER NOT NULL DEFAULT 0,
		read      INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (user_id, conv)
	) WITHOUT ROWID;
	CREATE TABLE tokens (
		hash    TEXT PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id),
		expires INTEGER NOT NULL -- unix milliseconds
	) WITHOUT ROWID;
	-- The last message id, so that opening does not scan messages (which has
	-- no index on id: ids are assigned by the single writer).
	CREATE TABLE meta (
		one         INTEGER PRIMARY KEY CHECK (one = 1),
		last_msg_id INTEGER NOT NULL
	);
	INSERT INTO meta (one, last_msg_id) VALUES (1, 0);`,
	// 2: revoking a user's tokens and sweeping expired ones without a scan.
	`CREATE INDEX tokens_by_user ON tokens(user_id);
	CREATE INDEX tokens_by_expiry ON tokens(expires);`,
	// 3: social (issue 11): consent, blocks, private groups. Existing groups
	// become public with history from join on, and existing members keep
	// reading everything (joined_seq 0).
	`ALTER TABLE chat_groups ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE chat_groups ADD COLUMN history TEXT NOT NULL DEFAULT 'joined';
	ALTER TABLE members ADD COLUMN joined_seq INTEGER NOT NULL DEFAULT 0;
	CREATE TABLE friend_requests (
		from_id INTEGER NOT NULL REFERENCES users(id),
		to_id   INTEGER NOT NULL REFERENCES users(id),
		ts      INTEGER NOT NULL, -- unix milliseconds
		PRIMARY KEY (from_id, to_id)
	) WITHOUT ROWID;
	CREATE INDEX friend_requests_to ON friend_requests(to_id, from_id);
	CREATE TABLE blocks (
		user_id    INTEGER NOT NULL REFERENCES users(id),
		blocked_id INTEGER NOT NULL REFERENCES users(id),
		PRIMARY KEY (user_id, blocked_id)
	) WITHOUT ROWID;
	-- Former members: what they may still read, (joined_seq, left_seq].
	CREATE TABLE departed (
		group_id   INTEGER NOT NULL,
		user_id    INTEGER NOT NULL,
		joined_seq INTEGER NOT NULL,
		left_seq   INTEGER NOT NULL,
		PRIMARY KEY (group_id, user_id)
	) WITHOUT ROWID;
	CREATE TABLE group_pending (
		group_id INTEGER NOT NULL REFERENCES chat_groups(id),
		user_id  INTEGER NOT NULL REFERENCES users(id),
		kind     TEXT NOT NULL,
		by_id    INTEGER NOT NULL,
		ts       INTEGER NOT NULL,
		PRIMARY KEY (group_id, user_id)
	) WITHOUT ROWID;
	CREATE INDEX group_pending_user ON group_pending(user_id, group_id);`,
}

// dsn builds the connection string of one pool. Every connection gets
// busy_timeout (another connection of ours may hold a lock for a moment) and
// foreign keys; the writer also turns automatic checkpoints off and bounds
// the WAL it leaves behind; readers are query-only.
func dsn(path string, extra ...string) string {
	q := []string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(1)",
	}
	// A plain name, not a file: URI, so the path reaches SQLite verbatim
	// (no %-decoding); the driver strips the query.
	return path + "?" + strings.Join(append(q, extra...), "&")
}

// Open opens (creating it if needed) the database at path, migrates its
// schema and starts the background checkpointer. Close releases it.
func Open(path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "sqlite: bad database path %q", path)
	}
	s := &Store{
		path:   path,
		logger: logger.With("component", "sqlite"),
		seqs:   make(map[string]int64),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := s.open(); err != nil {
		s.closeDBs()
		return nil, err
	}
	go s.checkpointer()
	return s, nil
}

func (s *Store) open() error {
	var err error
	// The writer is opened and migrated first: it switches the file to WAL.
	s.wdb, err = sql.Open("sqlite", dsn(s.path, "_pragma=wal_autocheckpoint(0)", "_pragma=journal_size_limit(67108864)", "_pragma=cache_size(-32768)", "_txlock=immediate"))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if err := s.migrate(); err != nil {
		return err
	}
	if err := s.wdb.QueryRow("SELECT last_msg_id FROM meta").Scan(&s.lastID); err != nil {
		return fmt.Errorf("sqlite: load last message id: %w", err)
	}

	n := max(4, runtime.GOMAXPROCS(0))
	s.rdb, err = sql.Open("sqlite", dsn(s.path, "_pragma=query_only(1)"))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)

	s.cdb, err = sql.Open("sqlite", dsn(s.path))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetMaxIdleConns(1)

	prep := func(db *sql.DB, dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		*dst, err = db.Prepare(q)
		if err != nil {
			err = fmt.Errorf("sqlite: prepare %q: %w", q, err)
		}
	}
	w, r := &s.w, &s.r
	// ON CONFLICT DO NOTHING: a (sender, cmid) already stored makes the
	// insert a no-op (0 rows), which is how Append detects a duplicate
	// without probing the index first for every message.
	prep(s.wdb, &w.insMsg, "INSERT INTO messages ("+msgCols+") VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")
	prep(s.wdb, &w.selCMID, "SELECT "+msgCols+" FROM messages WHERE sender = ? AND cmid = ? AND cmid != ''")
	prep(s.wdb, &w.maxSeq, "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv = ?")
	prep(s.wdb, &w.setLastID, "UPDATE meta SET last_msg_id = ? WHERE one = 1")
	prep(s.wdb, &w.insCursor, "INSERT OR IGNORE INTO cursors (user_id, conv, delivered, read) VALUES (?, ?, ?, ?)")
	prep(s.wdb, &w.markDelivered, "UPDATE cursors SET delivered = MAX(delivered, ?) WHERE user_id = ? AND conv = ?")
	prep(s.wdb, &w.markRead, "UPDATE cursors SET delivered = MAX(delivered, ?1), read = MAX(read, ?1) WHERE user_id = ?2 AND conv = ?3")
	prep(s.wdb, &w.raiseRead, "UPDATE cursors SET read = MAX(read, ?1) WHERE user_id = ?2 AND conv = ?3")

	prep(s.rdb, &r.user, "SELECT name, pass_hash FROM users WHERE id = ?")
	prep(s.rdb, &r.friends, "SELECT u.id, u.name FROM friends f JOIN users u ON u.id = f.friend_id WHERE f.user_id = ? ORDER BY u.id")
	prep(s.rdb, &r.group, "SELECT name, descr, private, history FROM chat_groups WHERE id = ?")
	prep(s.rdb, &r.members, "SELECT m.user_id, u.name, m.role FROM members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ? ORDER BY m.user_id")
	prep(s.rdb, &r.userGroups, `SELECT g.id, g.name, g.descr, g.private, g.history, o.user_id, u.name, o.role
		FROM members m
		JOIN chat_groups g ON g.id = m.group_id
		JOIN members o ON o.group_id = m.group_id
		JOIN users u ON u.id = o.user_id
		WHERE m.user_id = ? ORDER BY g.id, o.user_id`)
	prep(s.rdb, &r.role, "SELECT EXISTS (SELECT 1 FROM chat_groups WHERE id = ?1), COALESCE((SELECT role FROM members WHERE group_id = ?1 AND user_id = ?2), '')")
	prep(s.rdb, &r.since, "SELECT "+msgCols+" FROM messages WHERE conv = ? AND seq > ? ORDER BY seq LIMIT ?")
	prep(s.rdb, &r.before, "SELECT * FROM (SELECT "+msgCols+" FROM messages WHERE conv = ? AND seq < ? ORDER BY seq DESC LIMIT ?) ORDER BY seq")
	prep(s.rdb, &r.convs, `SELECT c.conv, COALESCE((SELECT MAX(m.seq) FROM messages m WHERE m.conv = c.conv), 0), c.delivered, c.read
		FROM cursors c WHERE c.user_id = ? ORDER BY c.conv`)
	prep(s.rdb, &r.undelivered, `SELECT m.id, m.conv, m.seq, m.sender, m.sender_name, m.recipient, m.group_id, m.body, m.ctime, m.ts, m.cmid
		FROM cursors c CROSS JOIN messages m ON m.conv = c.conv AND m.seq > c.delivered
		WHERE c.user_id = ?1 AND m.sender != ?1 ORDER BY m.id LIMIT ?2`)
	prep(s.rdb, &r.lastSeq, "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conv = ?")
	prep(s.rdb, &r.tokenUser, "SELECT user_id FROM tokens WHERE hash = ? AND expires > ?")
	return err
}

// migrate brings the schema to the last migration.
func (s *Store) migrate() error {
	ctx := context.Background()
	var version int
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return s.wrap("read schema version", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("sqlite: %s has schema version %d, newer than this program's %d", s.path, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			// PRAGMA takes no parameters; v+1 is our own integer.
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v+1, err)
		}
		s.logger.Info("migrated schema", "path", s.path, "version", v+1)
	}
	return nil
}

// checkpointer moves the WAL into the database file off the write path: a
// PASSIVE checkpoint never blocks the writer or the readers.
func (s *Store) checkpointer() {
	defer close(s.done)
	t := time.NewTicker(checkpointPoll)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		if time.Since(last) < checkpointEvery {
			fi, err := os.Stat(s.path + "-wal")
			if err != nil || fi.Size() < walBig {
				continue
			}
		}
		last = time.Now()
		var busy, logPages, done int
		err := s.cdb.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done)
		if err != nil {
			s.logger.Warn("checkpoint failed", "err", err)
			continue
		}
		if done < logPages {
			// Readers still use the older frames; the next round gets them.
			s.logger.Debug("checkpoint incomplete", "wal_pages", logPages, "checkpointed", done)
		}
	}
}

// Close stops the checkpointer, waits for the calls in progress and closes
// the database (the last connection closed checkpoints the WAL).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.quit)
		<-s.done
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	var errs []error
	for _, st := range []*sql.Stmt{
		s.w.insMsg, s.w.selCMID, s.w.maxSeq, s.w.setLastID, s.w.insCursor, s.w.markDelivered, s.w.markRead, s.w.raiseRead,
		s.r.user, s.r.friends, s.r.group, s.r.members, s.r.userGroups, s.r.role,
		s.r.since, s.r.before, s.r.convs, s.r.undelivered, s.r.tokenUser, s.r.lastSeq,
	} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	// Readers and the checkpointer first, so that the writer's close is the
	// last one and leaves a checkpointed, truncated WAL.
	for _, db := range []*sql.DB{s.rdb, s.cdb, s.wdb} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	return errors.Join(errs...)
}

// wrap turns a driver error into a clusterchat error where one applies:
// a closed store or a locked/unreadable database is EUNAVAILABLE.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *clusterchat.Error
	if errors.As(err, &ce) {
		return err
	}
	if s.closed.Load() {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store closed")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
			s.logger.Error("database unavailable", "op", op, "err", err)
			return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store unavailable")
		}
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// isUnique tells whether err is a UNIQUE or PRIMARY KEY violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
}

// inTx runs fn in a transaction on the write connection. The caller holds
// wmu, or is migrate (before anything else runs).
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// write runs fn in a write transaction under wmu.
func (s *Store) write(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	if s.closed.Load() {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store closed")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.wrap(op, s.inTx(ctx, fn))
}

// exists tells whether a row with id is in table (a constant of ours).
func exists(ctx context.Context, tx *sql.Tx, table string, id int64) (bool, error) {
	var ok bool
	err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE id = ?)", id).Scan(&ok)
	return ok, err
}

// CreateUser implements clusterchat.Store.
func (s *Store) CreateUser(ctx context.Context, name, passHash string) (int64, error) {
	var id int64
	err := s.write(ctx, "create user", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "INSERT INTO users (name, pass_hash) VALUES (?, ?) RETURNING id", name, passHash).Scan(&id)
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// User implements clusterchat.Store.
func (s *Store) User(ctx context.Context, id int64) (*clusterchat.User, error) {
	u := &clusterchat.User{ID: id}
	err := s.r.user.QueryRowContext(ctx, id).Scan(&u.Name, &u.PassHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", id)
	}
	if err != nil {
		return nil, s.wrap("user", err)
	}
	return u, nil
}

// AddFriend implements clusterchat.Store.
func (s *Store) AddFriend(ctx context.Context, a, b int64) error {
	return s.write(ctx, "add friend", func(tx *sql.Tx) error {
		for _, id := range []int64{a, b} {
			ok, err := exists(ctx, tx, "users", id)
			if err != nil {
				return err
			}
			if !ok {
				return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", id)
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO friends (user_id, friend_id) VALUES (?, ?), (?, ?)", a, b, b, a)
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "users %d and %d are already friends", a, b)
		}
		return err
	})
}

// Friends implements clusterchat.Store.
func (s *Store) Friends(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	rows, err := s.r.friends.QueryContext(ctx, uid)
	if err != nil {
		return nil, s.wrap("friends", err)
	}
	defer rows.Close()
	var out []clusterchat.User
	for rows.Next() {
		var u clusterchat.User
		if err := rows.Scan(&u.ID, &u.Name); err != nil {
			return nil, s.wrap("friends", err)
		}
		out = append(out, u)
	}
	return out, s.wrap("friends", rows.Err())
}

// CreateGroup implements clusterchat.Store.
func (s *Store) CreateGroup(ctx context.Context, creator int64, name, desc string) (int64, error) {
	return s.NewGroup(ctx, creator, clusterchat.Group{Name: name, Desc: desc})
}

// NewGroup implements clusterchat.Store.
func (s *Store) NewGroup(ctx context.Context, creator int64, g clusterchat.Group) (int64, error) {
	if g.History == "" {
		g.History = clusterchat.HistoryJoined
	}
	var gid int64
	err := s.write(ctx, "create group", func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, "users", creator)
		if err != nil {
			return err
		}
		if !ok {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", creator)
		}
		err = tx.QueryRowContext(ctx, "INSERT INTO chat_groups (name, descr, creator, private, history) VALUES (?, ?, ?, ?, ?) RETURNING id",
			g.Name, g.Desc, creator, g.Private, g.History).Scan(&gid)
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", g.Name)
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO members (group_id, user_id, role) VALUES (?, ?, ?)", gid, creator, clusterchat.RoleCreator); err != nil {
			return err
		}
		// Group ids are never reused (AUTOINCREMENT), so the conversation
		// has no messages yet.
		_, err = tx.StmtContext(ctx, s.w.insCursor).ExecContext(ctx, creator, clusterchat.GroupConv(gid), 0, 0)
		return err
	})
	if err != nil {
		return 0, err
	}
	return gid, nil
}

// lastSeq returns the last committed seq of conv, loading it into the cache
// on first use. The caller holds wmu.
func (s *Store) lastSeq(ctx context.Context, tx *sql.Tx, conv string) (int64, error) {
	if seq, ok := s.seqs[conv]; ok {
		return seq, nil
	}
	var seq int64
	if err := tx.StmtContext(ctx, s.w.maxSeq).QueryRowContext(ctx, conv).Scan(&seq); err != nil {
		return 0, err
	}
	s.seqs[conv] = seq // committed state: valid even if tx rolls back
	return seq, nil
}

// JoinGroup implements clusterchat.Store.
func (s *Store) JoinGroup(ctx context.Context, gid, uid int64) (bool, error) {
	var added bool
	err := s.write(ctx, "join group", func(tx *sql.Tx) error {
		for _, c := range []struct {
			table, what string
			id          int64
		}{{"chat_groups", "group", gid}, {"users", "user", uid}} {
			ok, err := exists(ctx, tx, c.table, c.id)
			if err != nil {
				return err
			}
			if !ok {
				return clusterchat.Errorf(clusterchat.ENOTFOUND, "no %s %d", c.what, c.id)
			}
		}
		conv := clusterchat.GroupConv(gid)
		seq, err := s.lastSeq(ctx, tx, conv)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO members (group_id, user_id, role, joined_seq) VALUES (?, ?, ?, ?)", gid, uid, clusterchat.RoleNormal, seq)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		added = true
		for _, q := range []string{"DELETE FROM group_pending WHERE group_id = ? AND user_id = ?", "DELETE FROM departed WHERE group_id = ? AND user_id = ?"} {
			if _, err := tx.ExecContext(ctx, q, gid, uid); err != nil {
				return err
			}
		}
		_, err = tx.StmtContext(ctx, s.w.insCursor).ExecContext(ctx, uid, conv, seq, seq)
		return err
	})
	if err != nil {
		return false, err
	}
	return added, nil
}

// Group implements clusterchat.Store.
func (s *Store) Group(ctx context.Context, gid int64) (*clusterchat.Group, error) {
	// One read transaction, so the group and its members are one snapshot.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, s.wrap("group", err)
	}
	defer tx.Rollback()
	g := &clusterchat.Group{ID: gid}
	err = tx.StmtContext(ctx, s.r.group).QueryRowContext(ctx, gid).Scan(&g.Name, &g.Desc, &g.Private, &g.History)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	if err != nil {
		return nil, s.wrap("group", err)
	}
	rows, err := tx.StmtContext(ctx, s.r.members).QueryContext(ctx, gid)
	if err != nil {
		return nil, s.wrap("group members", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m clusterchat.Member
		if err := rows.Scan(&m.UserID, &m.Name, &m.Role); err != nil {
			return nil, s.wrap("group members", err)
		}
		g.Members = append(g.Members, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("group members", err)
	}
	return g, nil
}

// UserGroups implements clusterchat.Store.
func (s *Store) UserGroups(ctx context.Context, uid int64) ([]clusterchat.Group, error) {
	rows, err := s.r.userGroups.QueryContext(ctx, uid)
	if err != nil {
		return nil, s.wrap("user groups", err)
	}
	defer rows.Close()
	var out []clusterchat.Group
	for rows.Next() {
		var (
			g clusterchat.Group
			m clusterchat.Member
		)
		if err := rows.Scan(&g.ID, &g.Name, &g.Desc, &g.Private, &g.History, &m.UserID, &m.Name, &m.Role); err != nil {
			return nil, s.wrap("user groups", err)
		}
		if n := len(out); n == 0 || out[n-1].ID != g.ID {
			out = append(out, g)
		}
		last := &out[len(out)-1]
		last.Members = append(last.Members, m)
	}
	return out, s.wrap("user groups", rows.Err())
}

// Role implements clusterchat.Store.
func (s *Store) Role(ctx context.Context, gid, uid int64) (string, error) {
	var (
		found bool
		role  string
	)
	if err := s.r.role.QueryRowContext(ctx, gid, uid).Scan(&found, &role); err != nil {
		return "", s.wrap("role", err)
	}
	if !found {
		return "", clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	return role, nil
}

// Append implements clusterchat.Store. The whole batch is one transaction on
// the write connection; seqs come from the in-memory cache, ids from lastID.
func (s *Store) Append(ctx context.Context, msgs []*clusterchat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if s.closed.Load() {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store closed")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()

	now := time.Now().UnixMilli()
	// Seqs assigned by this batch, published to s.seqs only after commit.
	pending := make(map[string]int64, 4)
	// Each sender's last message per conversation: a sender has read its
	// conversation up to it (see clusterchat.Store.Append).
	type readRef struct {
		user int64
		conv string
	}
	reads := make(map[readRef]int64, 4)
	id := s.lastID
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, s.w.insMsg)
		var sel, cur *sql.Stmt // prepared on first need
		for _, m := range msgs {
			last, ok := pending[m.Conv]
			if !ok {
				var err error
				if last, err = s.lastSeq(ctx, tx, m.Conv); err != nil {
					return err
				}
			}
			m.ID, m.Seq, m.Time, m.Dup = id+1, last+1, time.UnixMilli(now), false
			res, err := ins.ExecContext(ctx, m.ID, m.Conv, m.Seq, m.From, m.FromName, m.To, m.GroupID, m.Body, m.CTime, now, m.CMID)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 {
				// The (sender, cmid) is taken: by a committed message or an
				// earlier one of this batch, which this transaction sees.
				if sel == nil {
					sel = tx.StmtContext(ctx, s.w.selCMID)
				}
				if err := scanMsg(sel.QueryRowContext(ctx, m.From, m.CMID), m); err != nil {
					if errors.Is(err, sql.ErrNoRows) {
						err = fmt.Errorf("conversation %s seq %d is taken: another process writes this file", m.Conv, last+1)
					}
					return err
				}
				m.Dup = true
				continue
			}
			id++
			pending[m.Conv] = m.Seq
			reads[readRef{m.From, m.Conv}] = m.Seq
			if last == 0 && !m.IsGroup() {
				// First message of a 1:1 conversation: both users become
				// participants.
				if a, b, _, ok := clusterchat.ParseConv(m.Conv); ok {
					if cur == nil {
						cur = tx.StmtContext(ctx, s.w.insCursor)
					}
					for _, u := range []int64{a, b} {
						if _, err := cur.ExecContext(ctx, u, m.Conv, 0, 0); err != nil {
							return err
						}
					}
				}
			}
		}
		if id == s.lastID {
			return nil
		}
		read := tx.StmtContext(ctx, s.w.raiseRead)
		for r, seq := range reads {
			if _, err := read.ExecContext(ctx, seq, r.user, r.conv); err != nil {
				return err
			}
		}
		_, err := tx.StmtContext(ctx, s.w.setLastID).ExecContext(ctx, id)
		return err
	})
	if err != nil {
		for _, m := range msgs {
			m.ID, m.Seq, m.Time, m.Dup = 0, 0, time.Time{}, false
		}
		return s.wrap("append", err)
	}
	s.lastID = id
	for conv, seq := range pending {
		s.seqs[conv] = seq
	}
	return nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanMsg reads the msgCols of one row into m.
func scanMsg(r scanner, m *clusterchat.Message) error {
	var ts int64
	if err := r.Scan(&m.ID, &m.Conv, &m.Seq, &m.From, &m.FromName, &m.To, &m.GroupID, &m.Body, &m.CTime, &ts, &m.CMID); err != nil {
		return err
	}
	m.Time = time.UnixMilli(ts)
	return nil
}

// queryMsgs runs a message query and collects its rows.
func (s *Store) queryMsgs(ctx context.Context, op string, st *sql.Stmt, args ...any) ([]*clusterchat.Message, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []*clusterchat.Message
	for rows.Next() {
		m := new(clusterchat.Message)
		if err := scanMsg(rows, m); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, m)
	}
	return out, s.wrap(op, rows.Err())
}

// Since implements clusterchat.Store.
func (s *Store) Since(ctx context.Context, conv string, after int64, limit int) ([]*clusterchat.Message, error) {
	return s.queryMsgs(ctx, "since", s.r.since, conv, after, limit)
}

// Before implements clusterchat.Store.
func (s *Store) Before(ctx context.Context, conv string, before int64, limit int) ([]*clusterchat.Message, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	return s.queryMsgs(ctx, "before", s.r.before, conv, before, limit)
}

// Convs implements clusterchat.Store.
func (s *Store) Convs(ctx context.Context, uid int64) ([]clusterchat.ConvState, error) {
	rows, err := s.r.convs.QueryContext(ctx, uid)
	if err != nil {
		return nil, s.wrap("convs", err)
	}
	defer rows.Close()
	var out []clusterchat.ConvState
	for rows.Next() {
		var c clusterchat.ConvState
		if err := rows.Scan(&c.Conv, &c.LastSeq, &c.Delivered, &c.Read); err != nil {
			return nil, s.wrap("convs", err)
		}
		out = append(out, c)
	}
	return out, s.wrap("convs", rows.Err())
}

// LastSeq implements clusterchat.Store: MAX over the (conv, seq) key is
// one index probe.
func (s *Store) LastSeq(ctx context.Context, conv string) (int64, error) {
	var seq int64
	err := s.r.lastSeq.QueryRowContext(ctx, conv).Scan(&seq)
	return seq, s.wrap("last seq", err)
}

// Undelivered implements clusterchat.Store.
func (s *Store) Undelivered(ctx context.Context, uid int64, limit int) ([]*clusterchat.Message, error) {
	return s.queryMsgs(ctx, "undelivered", s.r.undelivered, uid, limit)
}

// MarkDelivered implements clusterchat.Store.
func (s *Store) MarkDelivered(ctx context.Context, cursors []clusterchat.Cursor) error {
	return s.mark(ctx, "mark delivered", s.w.markDelivered, cursors)
}

// MarkRead implements clusterchat.Store.
func (s *Store) MarkRead(ctx context.Context, cursors []clusterchat.Cursor) error {
	return s.mark(ctx, "mark read", s.w.markRead, cursors)
}

// mark applies a cursor update to each cursor in one transaction. The
// UPDATE matches no row for a conversation the user is not part of, which
// is how those are ignored.
func (s *Store) mark(ctx context.Context, op string, st *sql.Stmt, cursors []clusterchat.Cursor) error {
	if len(cursors) == 0 {
		return nil
	}
	return s.write(ctx, op, func(tx *sql.Tx) error {
		upd := tx.StmtContext(ctx, st)
		for _, c := range cursors {
			if _, err := upd.ExecContext(ctx, c.Seq, c.User, c.Conv); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutToken implements clusterchat.Store.
func (s *Store) PutToken(ctx context.Context, tokenHash string, uid int64, expires time.Time) error {
	return s.write(ctx, "put token", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO tokens (hash, user_id, expires) VALUES (?, ?, ?)", tokenHash, uid, expires.UnixMilli())
		return err
	})
}

// TokenUser implements clusterchat.Store.
func (s *Store) TokenUser(ctx context.Context, tokenHash string) (int64, error) {
	var uid int64
	err := s.r.tokenUser.QueryRowContext(ctx, tokenHash, time.Now().UnixMilli()).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, clusterchat.Errorf(clusterchat.EAUTH, "bad or expired token")
	}
	if err != nil {
		return 0, s.wrap("token", err)
	}
	return uid, nil
}

// RenewToken implements clusterchat.Store.
func (s *Store) RenewToken(ctx context.Context, tokenHash string, expires time.Time) error {
	return s.write(ctx, "renew token", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE tokens SET expires = ? WHERE hash = ? AND expires > ?",
			expires.UnixMilli(), tokenHash, time.Now().UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, error(clusterchat.Errorf(clusterchat.EAUTH, "bad or expired token")))
		}
		return nil
	})
}

// DeleteToken implements clusterchat.Store.
func (s *Store) DeleteToken(ctx context.Context, tokenHash string) error {
	return s.write(ctx, "delete token", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE hash = ?", tokenHash)
		return err
	})
}

// DeleteUserTokens implements clusterchat.Store.
func (s *Store) DeleteUserTokens(ctx context.Context, uid int64) error {
	return s.write(ctx, "delete user tokens", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE user_id = ?", uid)
		return err
	})
}

// DeleteExpiredTokens implements clusterchat.Store.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, "delete expired tokens", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM tokens WHERE expires <= ?", now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// SetPassword implements clusterchat.Store.
func (s *Store) SetPassword(ctx context.Context, uid int64, passHash string) error {
	return s.write(ctx, "set password", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE users SET pass_hash = ? WHERE id = ?", passHash, uid)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, error(clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", uid)))
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM tokens WHERE user_id = ?", uid)
		return err
	})
}

// Ping implements clusterchat.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store closed")
	}
	var one int
	return s.wrap("ping", s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one))
}

// Backup writes a consistent copy of the database, one SQLite file, to
// dest (which must not exist), beside traffic (VACUUM INTO reads one
// snapshot). It runs on the write connection (the read pool is query-only),
// so writes wait for it: a copy of a large database stalls messages.
func (s *Store) Backup(ctx context.Context, dest string) error {
	_, err := s.wdb.ExecContext(ctx, "VACUUM INTO ?", dest)
	return s.wrap("backup", err)
}

var _ clusterchat.BackupStore = (*Store)(nil)
