package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Streaming replication in tests
//
// StartStandby gives a primary from NewPostgres a hot standby streaming its
// WAL, the way operators run PostgreSQL's own replication: pg_basebackup -R
// copies the primary and writes standby.signal and primary_conninfo. With
// synchronous replication the primary's commits wait until the standby has
// flushed them (synchronous_standby_names), so a failover to it loses no
// acknowledged commit; with asynchronous replication they do not wait, and
// the last moments before a failover can be lost. Promote makes the standby
// the primary (pg_promote, as pg_ctl promote does); servers whose DSN lists
// both hosts with target_session_attrs=read-write follow it (FailoverDSN).

// standbyName is the standby's cluster_name, which its WAL receiver uses as
// application_name: the name synchronous_standby_names refers to.
const standbyName = "standby1"

// StartStandby starts a streaming standby of p (a server from NewPostgres)
// on a port of its own and returns it once p streams to it; with sync, p's
// commits wait for it (synchronous_standby_names) from then on. Take the
// copy after creating the databases the test uses (CreateDB), or let them
// replicate. It is stopped and removed when the test ends.
func (p *Postgres) StartStandby(tb testing.TB, sync bool) *Postgres {
	tb.Helper()
	root, err := pgTempDir(p.cred)
	if err != nil {
		tb.Fatalf("testenv: standby folder: %v", err)
	}
	s := &Postgres{
		Port:    freePort(),
		root:    root,
		dataDir: filepath.Join(root, "data"),
		cred:    p.cred,
		adminDB: "postgres",
		args:    []string{"-c", "cluster_name=" + standbyName, "-c", "hot_standby=on"},
	}
	tb.Cleanup(func() {
		if err := s.destroy(); err != nil {
			tb.Errorf("testenv: stopping standby: %v", err)
		}
	})
	// --no-sync: the copy is a throwaway; the standby itself runs with
	// fsync on like the primary.
	bb := exec.Command(filepath.Join(pgBinDir, "pg_basebackup"), "-h", "127.0.0.1", "-p", strconv.Itoa(p.Port),
		"-U", "postgres", "-D", s.dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	bb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := bb.CombinedOutput(); err != nil {
		tb.Fatalf("testenv: pg_basebackup: %v\n%s", err, out)
	}
	s.mu.Lock()
	err = s.startLocked()
	s.mu.Unlock()
	if err != nil {
		tb.Fatalf("testenv: start standby: %v", err)
	}
	want := "async"
	if sync {
		want = "sync"
		p.exec(tb, "ALTER SYSTEM SET synchronous_standby_names = '"+standbyName+"'")
		p.exec(tb, "SELECT pg_reload_conf()")
	}
	WaitFor(tb, 30*time.Second, "the primary streaming to the standby as "+want, func() bool {
		var state string
		err := p.queryRow("SELECT sync_state FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
			[]any{standbyName}, &state)
		return err == nil && state == want
	})
	return s
}

// FailoverDSN returns dsn (a database on one of ps, from CreateDB) with the
// hosts of every server of ps, in that order, and
// target_session_attrs=read-write: a client connects to the first that
// takes writes, so it follows a promoted standby.
func FailoverDSN(tb testing.TB, dsn string, ps ...*Postgres) string {
	tb.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("testenv: FailoverDSN: %v", err)
	}
	hosts := make([]string, len(ps))
	for i, p := range ps {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", p.Port)
	}
	u.Host = strings.Join(hosts, ",")
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	u.RawQuery = q.Encode()
	return u.String()
}

// Promote ends recovery on a standby (pg_promote, what pg_ctl promote
// does): it replays what it has received and takes writes. It returns
// once the standby is a primary.
func (p *Postgres) Promote(tb testing.TB) {
	tb.Helper()
	var ok bool
	if err := p.queryRow("SELECT pg_promote(true, 60)", nil, &ok); err != nil || !ok {
		tb.Fatalf("testenv: promote: %v (promoted %v); %s", err, ok, p.logTail())
	}
}

// CutReplication stops the standby's WAL receiver (primary_conninfo
// emptied and reloaded) and returns once it is gone: from then on the
// standby receives nothing, as when the network between the two fails.
func (p *Postgres) CutReplication(tb testing.TB) {
	tb.Helper()
	p.exec(tb, "ALTER SYSTEM SET primary_conninfo = ''")
	p.exec(tb, "SELECT pg_reload_conf()")
	WaitFor(tb, 30*time.Second, "the standby's WAL receiver to stop", func() bool {
		var n int
		return p.queryRow("SELECT count(*) FROM pg_stat_wal_receiver", nil, &n) == nil && n == 0
	})
}

// WaitReplayed waits until standby has replayed everything p has written
// so far.
func (p *Postgres) WaitReplayed(tb testing.TB, standby *Postgres) {
	tb.Helper()
	var lsn string
	if err := p.queryRow("SELECT pg_current_wal_lsn()::text", nil, &lsn); err != nil {
		tb.Fatalf("testenv: primary wal lsn: %v", err)
	}
	WaitFor(tb, 30*time.Second, "the standby replaying up to "+lsn, func() bool {
		var done bool
		err := standby.queryRow("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", []any{lsn}, &done)
		return err == nil && done
	})
}

// exec runs a statement on p's admin connection.
func (p *Postgres) exec(tb testing.TB, sql string) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin == nil {
		tb.Fatalf("testenv: %q on a stopped postgres", sql)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.admin.Exec(ctx, sql); err != nil {
		tb.Fatalf("testenv: %s: %v", sql, err)
	}
}

// queryRow reads one row on p's admin connection into dest.
func (p *Postgres) queryRow(sql string, args []any, dest ...any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin == nil {
		return pgx.ErrNoRows
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return p.admin.QueryRow(ctx, sql, args...).Scan(dest...)
}
