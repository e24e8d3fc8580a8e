package pebble_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"clusterchat"
	"clusterchat/pebble"
	"clusterchat/storetest"
)

// mustOpen opens a store in dir, failing the test on error.
func mustOpen(tb testing.TB, dir string, o pebble.Options) *pebble.Store {
	tb.Helper()
	s, err := pebble.OpenOptions(dir, slog.New(slog.DiscardHandler), o)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterchat.Store {
		return mustOpen(t, t.TempDir(), pebble.Options{})
	})
}

// TestStoreSync runs the suite with an fsync per commit: the same contract.
func TestStoreSync(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterchat.Store {
		return mustOpen(t, t.TempDir(), pebble.Options{Sync: true})
	})
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) clusterchat.Store {
		return mustOpen(b, b.TempDir(), pebble.Options{})
	})
}

// BenchmarkAppendSync is BenchmarkAppend with an fsync per commit.
func BenchmarkAppendSync(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) clusterchat.Store {
		return mustOpen(b, b.TempDir(), pebble.Options{Sync: true})
	})
}

// TestOpenBadDir checks that a directory that cannot be created is an error,
// not a panic.
func TestOpenBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"", filepath.Join(file, "sub")} {
		if s, err := pebble.Open(dir, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dir)
		}
	}
}

// TestLocked checks that a second Open of a directory in use fails: the
// in-memory counters are only valid for one owner.
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, pebble.Options{})
	defer s.Close()
	if s2, err := pebble.Open(dir, nil); err == nil {
		s2.Close()
		t.Fatal("second Open of the same directory succeeded")
	}
}

// TestReopen runs the shared reopen checks on one directory.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	storetest.Reopen(t, func(t *testing.T) clusterchat.Store { return mustOpen(t, dir, pebble.Options{}) })
}

// killChildEnv names the store directory to the child process of
// TestKillDurability.
const killChildEnv = "PEBBLE_KILL_CHILD_DIR"

// TestKillDurability checks the promise of the default mode: a message
// whose Append returned survives a SIGKILL of the process. A child process
// (this test binary, re-executed) appends messages and prints "ok" after
// each Append returns; the parent kills it mid-way, reopens the directory
// and finds every acknowledged message, with contiguous seqs.
func TestKillDurability(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	ctx := context.Background()
	dir := t.TempDir()
	s := mustOpen(t, dir, pebble.Options{})
	a, _ := s.CreateUser(ctx, "a", "x")
	b, _ := s.CreateUser(ctx, "b", "x")
	gid, err := s.CreateGroup(ctx, a, "g", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDurability$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// acked: conversation -> highest acknowledged seq; cmids: every
	// acknowledged client id.
	acked := map[string]int64{}
	var cmids []string
	const killAfter = 500
	sc := bufio.NewScanner(out)
	for n := 0; n < killAfter && sc.Scan(); {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "ok" {
			continue
		}
		seq, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		acked[f[1]] = max(acked[f[1]], seq)
		cmids = append(cmids, f[3])
		n++
	}
	if len(cmids) < killAfter {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child stopped after %d acks: %s", len(cmids), stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	s = mustOpen(t, dir, pebble.Options{})
	defer s.Close()
	for _, conv := range []string{clusterchat.DirectConv(a, b), clusterchat.GroupConv(gid)} {
		var all []*clusterchat.Message
		for after := int64(0); ; {
			page, err := s.Since(ctx, conv, after, clusterchat.MaxPageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			after = page[len(page)-1].Seq
		}
		for i, m := range all {
			if m.Seq != int64(i+1) {
				t.Fatalf("%s: message %d has seq %d: not contiguous", conv, i, m.Seq)
			}
		}
		if int64(len(all)) < acked[conv] {
			t.Errorf("%s: %d messages stored, %d acknowledged before the kill", conv, len(all), acked[conv])
		}
		t.Logf("%s: %d acknowledged, %d stored", conv, acked[conv], len(all))
	}
	// Every acknowledged message is found by its cmid (a resend is a
	// duplicate), and the next message continues the seqs.
	for i, cm := range cmids {
		m := &clusterchat.Message{Conv: clusterchat.DirectConv(a, b), From: a, To: b, CMID: cm}
		if i%2 == 1 {
			m = &clusterchat.Message{Conv: clusterchat.GroupConv(gid), From: b, GroupID: gid, CMID: cm}
		}
		if err := s.Append(ctx, []*clusterchat.Message{m}); err != nil {
			t.Fatal(err)
		}
		if !m.Dup {
			t.Fatalf("acknowledged message %s is missing after the kill", cm)
		}
	}
}

// killChild is the child of TestKillDurability: it appends to a 1:1 and a
// group conversation, alternately, until it is killed, and prints
// "ok <conv> <seq> <cmid>" once each Append has returned.
func killChild(dir string) {
	s, err := pebble.Open(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	const a, b, gid = 1, 2, 1
	for i := 0; i < 1_000_000; i++ {
		cm := "cm" + strconv.Itoa(i)
		m := &clusterchat.Message{Conv: clusterchat.DirectConv(a, b), From: a, FromName: "a", To: b, Body: "hello " + cm, CMID: cm}
		if i%2 == 1 {
			m = &clusterchat.Message{Conv: clusterchat.GroupConv(gid), From: b, FromName: "b", GroupID: gid, Body: "hello " + cm, CMID: cm}
		}
		if err := s.Append(ctx, []*clusterchat.Message{m}); err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "ok %s %d %s\n", m.Conv, m.Seq, cm)
	}
	os.Exit(3)
}

// TestDiskFull: a full disk refuses appends with EUNAVAILABLE and loses
// nothing acknowledged; the store reopens itself once there is room.
func TestDiskFull(t *testing.T) {
	storetest.DiskFull(t, func(dir string) (clusterchat.Store, error) {
		return pebble.Open(dir, nil)
	})
}
