package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL in tests
//
// StartPostgres gives a test a fresh, empty schema of its own on a real
// PostgreSQL 15 server; its DSN sets search_path to that schema, so to the
// test it is an empty database. (A schema costs one small commit; a CREATE
// DATABASE copies a template and took 1-4 s on a busy 2-core machine.) The
// server is shared by every test of one test binary, so a package that uses
// it stops it in TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testenv.StopPostgres()
//		os.Exit(code)
//	}
//
// Fault tests that take the database down use their own server from
// NewPostgres, so that stopping it does not break the tests sharing the other.
//
// The postmaster runs in the foreground as a child of the test process (not
// daemonized by pg_ctl), as the postgres user when we are root (PostgreSQL
// refuses to run as root), with a parent-death signal: if the test binary is
// killed (timeout, ^C, SIGKILL), the kernel makes the postmaster do an
// immediate shutdown instead of leaving a server behind. Its data folder is
// then left in /tmp; data folders of dead servers older than an hour are
// removed by the next start.
//
// fsync stays on: the stores are benchmarked on this server, and numbers
// without durability would flatter them.

// pgBinDir is where Debian's postgresql-15 package puts the server binaries.
const pgBinDir = "/usr/lib/postgresql/15/bin"

// pgDirPrefix names the temp folders of test servers, for the stale sweep.
const pgDirPrefix = "clusterchat-pg-"

// Postgres is one PostgreSQL server for tests: a data folder and, while it
// runs, a postmaster listening on 127.0.0.1:Port. Its methods are safe for
// concurrent use.
type Postgres struct {
	// Port is the TCP port on 127.0.0.1; it stays the same across Stop and
	// Start.
	Port int

	root    string // temp folder holding data/ and postgres.log
	dataDir string
	cred    *syscall.Credential // nil when we are not root

	args []string // extra postgres arguments (a standby's)

	mu      sync.Mutex
	cmd     *exec.Cmd     // the running postmaster, nil when stopped
	done    chan struct{} // closed when cmd has been waited for
	admin   *pgx.Conn     // for CREATE DATABASE and CREATE SCHEMA
	adminDB string        // the database admin is connected to
	dbs     atomic.Int64  // counter for database names
}

var (
	sharedMu sync.Mutex
	shared   *Postgres
)

// StartPostgres returns the DSN of a new, empty database on the shared test
// server of this process, starting the server on first use. Call
// StopPostgres from TestMain to stop it.
func StartPostgres(tb testing.TB) (dsn string) {
	tb.Helper()
	sharedMu.Lock()
	if shared == nil {
		p, err := newPostgres()
		if err == nil {
			err = p.useDB(sharedDB)
			if err != nil {
				p.destroy()
			}
		}
		if err != nil {
			sharedMu.Unlock()
			tb.Fatalf("testenv: %v", err)
		}
		shared = p
	}
	p := shared
	sharedMu.Unlock()
	return p.createSchema(tb)
}

// sharedDB is the database of the shared server that holds the schemas
// StartPostgres hands out.
const sharedDB = "tests"

// createSchema creates schema test_N in sharedDB and returns a DSN whose
// connections use it. "options" is understood by pgx and libpq alike.
func (p *Postgres) createSchema(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test_%d", p.dbs.Add(1))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin == nil {
		tb.Fatalf("testenv: StartPostgres on a stopped postgres")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The name is ours (test_N), so formatting it into the statement is
	// safe; DDL takes no parameters.
	if _, err := p.admin.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		tb.Fatalf("testenv: create schema %s: %v", name, err)
	}
	return p.DSN(sharedDB) + "&options=-c%20search_path%3D" + name
}

// StopPostgres stops the shared server started by StartPostgres, if any, and
// removes its data and the initdb template. Packages call it from TestMain
// after m.Run; a later StartPostgres would start a new server.
func StopPostgres() {
	defer removeTemplate()
	sharedMu.Lock()
	p := shared
	shared = nil
	sharedMu.Unlock()
	if p != nil {
		if err := p.destroy(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping postgres: %v\n", err)
		}
	}
}

// NewPostgres starts a server of the test's own, for tests that stop and
// start it (Stop, Start); CreateDB makes databases on it. It is stopped and
// removed when the test ends. initdb runs once per process: every server
// starts from a copy of that first cluster, which StopPostgres removes, so
// packages using NewPostgres also call StopPostgres from TestMain.
func NewPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	p, err := newPostgres()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.destroy(); err != nil {
			tb.Errorf("testenv: stopping postgres: %v", err)
		}
	})
	return p
}

// DSN returns the connection string of database db on p.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// CreateDB creates a new, empty database on p and returns its DSN. The
// database lives as long as the server.
func (p *Postgres) CreateDB(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test_%d", p.dbs.Add(1))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin == nil {
		tb.Fatalf("testenv: CreateDB on a stopped postgres")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The name is ours (test_N), so formatting it into the statement is safe;
	// CREATE DATABASE takes no parameters.
	if _, err := p.admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("testenv: create database %s: %v", name, err)
	}
	return p.DSN(name)
}

// useDB creates database db and points the admin connection at it.
func (p *Postgres) useDB(db string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := p.admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return fmt.Errorf("create database %s: %v", db, err)
	}
	p.adminDB = db
	p.admin.Close(ctx)
	conn, err := pgx.Connect(ctx, p.DSN(db))
	p.admin = conn
	return err
}

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// waits until it has exited. The data stays for Start.
func (p *Postgres) Stop(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.stopLocked(); err != nil {
		tb.Fatalf("testenv: stop postgres: %v", err)
	}
}

// Start starts a stopped server again on the same port and waits until it
// accepts connections.
func (p *Postgres) Start(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startLocked(); err != nil {
		tb.Fatalf("testenv: start postgres: %v", err)
	}
}

// Kill kills the postmaster and every backend with SIGKILL (a crash: no
// shutdown checkpoint, so the next Start runs crash recovery) and waits
// until the postmaster has exited. The data stays for Start.
func (p *Postgres) Kill(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.admin != nil {
		p.admin.Close(context.Background()) // its socket breaks anyway
		p.admin = nil
	}
	if p.cmd == nil {
		return
	}
	// Backends leave the postmaster's process group (setsid), so they are
	// killed one by one: the postmaster is frozen first, so that it forks
	// no more, then its children die, then it. Surviving backends would
	// go on serving their connections for a while.
	// A signal is delivered asynchronously: wait until the postmaster is
	// really stopped, or a fork could slip between the scan and the kill.
	pid := p.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGSTOP)
	for deadline := time.Now().Add(5 * time.Second); procState(pid) != 'T' && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	children := childPIDs(pid)
	for _, c := range children {
		syscall.Kill(c, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	// Likewise a killed process lingers a moment: a backend still
	// attached to the shared memory makes the next start refuse to run.
	for _, c := range children {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if st := procState(c); st == 0 || st == 'Z' || st == 'X' {
				break
			}
		}
	}
	<-p.done
	p.cmd, p.done = nil, nil
}

// childPIDs returns the processes whose parent is pid (from /proc).
func childPIDs(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, f := range stats {
		if fields := procStat(f); len(fields) >= 2 {
			if ppid, err := strconv.Atoi(fields[1]); err == nil && ppid == pid {
				if c, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// procState returns the state letter of process pid ('T': stopped), 0 if
// it cannot be read.
func procState(pid int) byte {
	if fields := procStat("/proc/" + strconv.Itoa(pid) + "/stat"); len(fields) > 0 && fields[0] != "" {
		return fields[0][0]
	}
	return 0
}

// procStat returns the fields of a /proc/PID/stat file after the command
// name (state, ppid, ...); the name may hold spaces, so the fields start
// after its closing parenthesis.
func procStat(file string) []string {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// newPostgres runs initdb in a new temp folder and starts the server.
func newPostgres() (*Postgres, error) {
	sweepStale()
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(pgBinDir, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s; install Debian package postgresql-15 (make deps does)", b, pgBinDir)
		}
	}
	p := &Postgres{}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the postgres user (Debian package postgresql creates it): %v", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	p.adminDB = "postgres"
	tmpl, err := template(p.cred)
	if err != nil {
		return nil, err
	}
	root, err := pgTempDir(p.cred)
	if err != nil {
		return nil, err
	}
	p.root = root
	p.dataDir = filepath.Join(root, "data")
	// cp -a keeps the owner (postgres) and the 0700 mode the server insists on.
	if out, err := exec.Command("cp", "-a", tmpl, p.dataDir).CombinedOutput(); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("copy initdb template: %v\n%s", err, out)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// freePort's port is free when it returns, not when the postmaster
	// binds it: a parallel test package may take it in between. Only the
	// first start moves to another port; restarts keep theirs.
	for attempt := 1; ; attempt++ {
		p.Port = freePort()
		err := p.startLocked()
		if err == nil {
			return p, nil
		}
		if !strings.Contains(err.Error(), "Address already in use") || attempt == 5 {
			os.RemoveAll(root)
			return nil, err
		}
	}
}

// The initdb template: a fresh cluster made once per process, copied for
// every server (initdb takes seconds on a busy machine, a copy a fraction).
var (
	tmplMu   sync.Mutex
	tmplDir  string // the cluster, inside tmplRoot
	tmplRoot string
)

// template returns the initdb template, making it on first use.
func template(cred *syscall.Credential) (string, error) {
	tmplMu.Lock()
	defer tmplMu.Unlock()
	if tmplDir != "" {
		return tmplDir, nil
	}
	root, err := pgTempDir(cred)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "template")
	// --no-sync only skips initdb's final flush of a throwaway cluster; the
	// servers themselves run with fsync on.
	initdb := exec.Command(filepath.Join(pgBinDir, "initdb"), "-D", dir,
		"-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(root)
		return "", fmt.Errorf("initdb: %v\n%s", err, out)
	}
	tmplDir, tmplRoot = dir, root
	return dir, nil
}

// removeTemplate removes the initdb template (StopPostgres does).
func removeTemplate() {
	tmplMu.Lock()
	defer tmplMu.Unlock()
	if tmplRoot != "" {
		os.RemoveAll(tmplRoot)
	}
	tmplDir, tmplRoot = "", ""
}

// pgTempDir makes a folder for a server's files. Not tb.TempDir: the server
// runs as postgres, which must own it and be able to traverse its parents.
func pgTempDir(cred *syscall.Credential) (string, error) {
	root, err := os.MkdirTemp("/tmp", pgDirPrefix+"*")
	if err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(root)
			return "", err
		}
	}
	// The sweep leaves folders of live test processes alone.
	if err := os.WriteFile(filepath.Join(root, "owner.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		os.RemoveAll(root)
		return "", err
	}
	return root, nil
}

// startLocked starts the postmaster and connects the admin connection.
func (p *Postgres) startLocked() error {
	if p.cmd != nil {
		return errors.New("already running")
	}
	logf, err := os.OpenFile(filepath.Join(p.root, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(pgBinDir, "postgres"), "-D", p.dataDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(p.Port),
		"-c", "unix_socket_directories="+p.dataDir,
		"-c", "max_connections=300",
		"-c", "fsync=on",
	)
	cmd.Args = append(cmd.Args, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: p.cred,
		Setpgid:    true, // a ^C to the test's terminal should not hit it first
		// SIGQUIT is PostgreSQL's immediate shutdown: if the test process
		// dies without stopping us, the server goes with it.
		Pdeathsig: syscall.SIGQUIT,
	}
	if err := spawn(cmd); err != nil {
		return fmt.Errorf("start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done

	deadline := time.Now().Add(30 * time.Second)
	for delay := 5 * time.Millisecond; ; delay = min(delay*2, 100*time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, p.DSN(p.adminDB))
		cancel()
		if err == nil {
			p.admin = conn
			return nil
		}
		select {
		case <-done:
			p.cmd, p.done = nil, nil
			return fmt.Errorf("postgres exited at start: %v; see %s", cmd.ProcessState, p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			p.stopLocked()
			return fmt.Errorf("postgres did not accept connections in 30s: %v; %s", err, p.logTail())
		}
		time.Sleep(delay)
	}
}

// stopLocked sends SIGINT (fast shutdown) and waits for the postmaster.
func (p *Postgres) stopLocked() error {
	if p.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		p.admin.Close(ctx)
		cancel()
		p.admin = nil
	}
	if p.cmd == nil {
		return nil
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd, p.done = nil, nil
	return nil
}

// destroy stops the server and removes its folder.
func (p *Postgres) destroy() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.stopLocked()
	if rerr := os.RemoveAll(p.root); err == nil {
		err = rerr
	}
	return err
}

// logTail returns the end of the server log, for failure messages.
func (p *Postgres) logTail() string {
	b, _ := os.ReadFile(filepath.Join(p.root, "postgres.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "postgres.log:\n" + string(b)
}

// freePort is FreePort without a testing.TB.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("testenv: free port: %v", err))
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// spawnCh feeds processes to start to one goroutine locked to its OS thread.
// The parent-death signal fires when the creating *thread* exits (go.dev/issue/27505),
// and the Go runtime may retire threads; this one never exits.
var (
	spawnOnce sync.Once
	spawnCh   = make(chan func())
)

// spawn starts cmd from the spawner thread.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		go func() {
			runtime.LockOSThread()
			for f := range spawnCh {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnCh <- func() { errc <- cmd.Start() }
	return <-errc
}

// sweepStale removes folders of test servers and initdb templates that are
// over an hour old and whose postmaster and test process are gone (a killed
// test binary, or one whose TestMain does not call StopPostgres, leaves
// them behind).
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join("/tmp", pgDirPrefix+"*"))
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || time.Since(fi.ModTime()) < time.Hour {
			continue
		}
		if pidAlive(filepath.Join(d, "data", "postmaster.pid")) || pidAlive(filepath.Join(d, "owner.pid")) {
			continue
		}
		os.RemoveAll(d)
	}
}

// pidAlive tells whether the process whose id is the first line of file
// exists.
func pidAlive(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	return err == nil && pid > 0 && syscall.Kill(pid, 0) == nil
}
