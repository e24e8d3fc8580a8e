package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// These tests run the real chatserver binary (race-built) on a temporary
// SQLite file, talk to it over TCP, stop it (SIGTERM or SIGKILL), start it
// again on the same file and check that nothing acknowledged was lost.

const readTimeout = 15 * time.Second

func startChatserver(t *testing.T) (*testenv.Server, string) {
	t.Helper()
	bin := testenv.BuildServer(t)
	db := filepath.Join(t.TempDir(), "chat.db")
	return testenv.StartServer(t, bin, "-store", "sqlite:"+db, "-bcrypt-cost", "4", "-log-level", "info"), db
}

// TestRestart: users, friends, groups and undelivered messages survive a
// clean shutdown (SIGTERM, exit 0), and seq continues after it.
func TestRestart(t *testing.T) {
	srv, _ := startChatserver(t)

	c := wiretest.Dial(t, srv.Addr(), readTimeout)
	alice, bob, carol := c.Register("alice", "pw"), c.Register("bob", "pw"), c.Register("carol", "pw")
	a := wiretest.Dial(t, srv.Addr(), readTimeout)
	a.NativeLogin(alice, "pw")
	a.CallSkipping(7, `{"msgid":7,"friendid":%d}`, bob)
	gid := a.CallSkipping(8, `{"msgid":8,"groupname":"club","groupdesc":"d"}`).Int("groupid")
	b := wiretest.Dial(t, srv.Addr(), readTimeout)
	b.NativeLogin(bob, "pw")
	b.CallSkipping(7, `{"msgid":7,"friendid":%d}`, alice) // friendship by consent: both add
	b.CallSkipping(9, `{"msgid":9,"groupid":%d}`, gid)
	b.CallSkipping(3, `{"msgid":3}`)
	var lastSeq int64
	for i := 1; i <= 3; i++ {
		lastSeq = a.CallSkipping(6, `{"msgid":6,"to":%d,"msg":"m%d","cmid":"a-%d"}`, bob, i, i).Int("seq")
	}
	a.CallSkipping(10, `{"msgid":10,"groupid":%d,"msg":"g1","cmid":"a-g1"}`, gid)
	a.CallSkipping(6, `{"msgid":6,"to":%d,"msg":"for carol","cmid":"a-c1"}`, carol)

	if code := srv.Term(t); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
	srv.Restart(t)

	b = wiretest.Dial(t, srv.Addr(), readTimeout)
	rep := b.ClassicLogin(bob, "pw")
	friends, groups, off := rep.Nested(t, "friends"), rep.Nested(t, "groups"), rep.Nested(t, "offlinemsg")
	if len(friends) != 1 || fmt.Sprint(friends[0].M["name"]) != "alice" {
		t.Fatalf("bob's friends after restart: %v", rep)
	}
	if len(groups) != 1 || groups[0].M["groupname"] != "club" {
		t.Fatalf("bob's groups after restart: %v", rep)
	}
	var bodies []string
	for _, m := range off {
		bodies = append(bodies, fmt.Sprint(m.M["msg"]))
	}
	if got := strings.Join(bodies, ","); got != "m1,m2,m3,g1" {
		t.Fatalf("bob's offlinemsg after restart = %s, want m1,m2,m3,g1", got)
	}
	c = wiretest.Dial(t, srv.Addr(), readTimeout)
	if off := c.ClassicLogin(carol, "pw").Nested(t, "offlinemsg"); len(off) != 1 || off[0].M["msg"] != "for carol" {
		t.Fatalf("carol's offlinemsg after restart: %v", off)
	}
	a = wiretest.Dial(t, srv.Addr(), readTimeout)
	a.NativeLogin(alice, "pw")
	if seq := a.CallSkipping(6, `{"msgid":6,"to":%d,"msg":"m4","cmid":"a-4"}`, bob).Int("seq"); seq != lastSeq+1 {
		t.Fatalf("seq after restart = %d, want %d", seq, lastSeq+1)
	}
	// A resend of a message acknowledged before the restart is still a dup.
	if r := a.CallSkipping(6, `{"msgid":6,"to":%d,"msg":"m1","cmid":"a-1"}`, bob); r.M["dup"] != true || r.Int("seq") != 1 {
		t.Fatalf("resend after restart: %v", r)
	}
	if code := srv.Term(t); code != 0 {
		t.Fatalf("second SIGTERM: exit code %d", code)
	}
}

// TestKillMidTraffic: SIGKILL while a client streams messages; after a
// restart on the same file every acknowledged message is there.
func TestKillMidTraffic(t *testing.T) {
	srv, _ := startChatserver(t)
	c := wiretest.Dial(t, srv.Addr(), readTimeout)
	alice, bob := c.Register("alice", "pw"), c.Register("bob", "pw")
	a := wiretest.Dial(t, srv.Addr(), readTimeout)
	a.NativeLogin(alice, "pw")

	// Writer: pipelines messages until the connection breaks.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a.NC.SetWriteDeadline(time.Now().Add(readTimeout))
			if _, err := fmt.Fprintf(a.NC, `{"msgid":6,"rid":%d,"to":%d,"msg":"k%d","cmid":"k-%d"}`+"\x00", i, bob, i, i); err != nil {
				return
			}
		}
	}()
	// Reader: records acknowledgements (rid -> seq) until the kill.
	acked := map[int64]int64{}
	for len(acked) < 100 {
		r, err := a.ReadObj(readTimeout)
		if err != nil {
			t.Fatalf("before the kill: %v", err)
		}
		if r.Int("msgid") != 11 || r.Int("errno") != 0 {
			t.Fatalf("unexpected reply %v", r)
		}
		acked[r.Int("rid")] = r.Int("seq")
	}
	srv.Kill(t)
	for {
		r, err := a.ReadObj(readTimeout)
		if err != nil {
			break
		}
		if r.Int("msgid") == 11 && r.Int("errno") == 0 {
			acked[r.Int("rid")] = r.Int("seq")
		}
	}
	close(stop)
	a.NC.Close()
	wg.Wait()

	srv.Restart(t)
	b := wiretest.Dial(t, srv.Addr(), readTimeout)
	b.NativeLogin(bob, "pw")
	stored := map[int64]string{} // seq -> body
	var after int64
	for {
		r := b.CallSkipping(14, `{"msgid":14,"to":%d,"after":%d,"limit":200}`, alice, after)
		msgs := r.List("msgs")
		for _, m := range msgs {
			m := wiretest.Obj{M: m.(map[string]any)}
			stored[m.Int("seq")] = fmt.Sprint(m.M["msg"])
			after = m.Int("seq")
		}
		if len(msgs) == 0 || after >= r.Int("last") {
			break
		}
	}
	for rid, seq := range acked {
		if got, want := stored[seq], fmt.Sprintf("k%d", rid); got != want {
			t.Fatalf("acknowledged message rid %d seq %d: stored %q, want %q (%d acked, %d stored)", rid, seq, got, want, len(acked), len(stored))
		}
	}
	for seq := int64(1); seq <= int64(len(stored)); seq++ {
		if _, ok := stored[seq]; !ok {
			t.Fatalf("gap at seq %d in %d stored messages", seq, len(stored))
		}
	}
	t.Logf("%d acknowledged, %d stored after SIGKILL", len(acked), len(stored))
}
