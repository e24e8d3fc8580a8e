package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat/internal/testenv"
)

// These tests run the real chatserver binary (race-built) on a temporary
// SQLite file, talk to it over TCP, stop it (SIGTERM or SIGKILL), start it
// again on the same file and check that nothing acknowledged was lost.

const readTimeout = 15 * time.Second

type rawClient struct {
	tb  testing.TB
	nc  net.Conn
	br  *bufio.Reader
	rid int64
}

func dialServer(tb testing.TB, addr string) *rawClient {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, readTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &rawClient{tb: tb, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// send writes one object followed by NUL, as the classic client does.
func (c *rawClient) send(format string, args ...any) {
	c.tb.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := fmt.Fprintf(c.nc, format+"\x00", args...); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

type reply map[string]any

func (r reply) int(k string) int64 {
	n, _ := r[k].(json.Number)
	v, _ := n.Int64()
	return v
}

func (c *rawClient) readReply() (reply, error) {
	c.nc.SetReadDeadline(time.Now().Add(readTimeout))
	line, err := c.br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var r reply
	if err := d.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode %q: %v", line, err)
	}
	return r, nil
}

// expect reads the next object and checks msgid and errno.
func (c *rawClient) expect(msgid, errno int) reply {
	c.tb.Helper()
	r, err := c.readReply()
	if err != nil {
		c.tb.Fatalf("read: %v", err)
	}
	if r.int("msgid") != int64(msgid) || r.int("errno") != int64(errno) {
		c.tb.Fatalf("got %v, want msgid %d errno %d", r, msgid, errno)
	}
	return r
}

// call sends a native request with a fresh rid and returns its reply.
func (c *rawClient) call(format string, args ...any) reply {
	c.tb.Helper()
	c.rid++
	c.send(`{"rid":%d,`+strings.TrimPrefix(format, "{"), append([]any{c.rid}, args...)...)
	var r reply
	for { // skip native events (presence, friend added, group joined)
		var err error
		if r, err = c.readReply(); err != nil {
			c.tb.Fatalf("read: %v", err)
		}
		if r.int("msgid") == 11 {
			break
		}
	}
	if r.int("errno") != 0 {
		c.tb.Fatalf("got %v, want errno 0", r)
	}
	if r.int("rid") != c.rid {
		c.tb.Fatalf("reply %v does not echo rid %d", r, c.rid)
	}
	return r
}

func (c *rawClient) register(name string) int64 {
	c.tb.Helper()
	c.send(`{"msgid":4,"name":%q,"password":"pw"}`, name)
	return c.expect(5, 0).int("id")
}

func (c *rawClient) classicLogin(id int64) reply {
	c.tb.Helper()
	c.send(`{"msgid":1,"id":%d,"password":"pw"}`, id)
	return c.expect(2, 0)
}

func (c *rawClient) nativeLogin(id int64) reply {
	c.tb.Helper()
	c.send(`{"msgid":1,"proto":2,"id":%d,"password":"pw"}`, id)
	return c.expect(2, 0)
}

// strs decodes a classic login list (an array of JSON strings).
func strs(tb testing.TB, r reply, key string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	list, _ := r[key].([]any)
	for _, s := range list {
		var m map[string]any
		if err := json.Unmarshal([]byte(s.(string)), &m); err != nil {
			tb.Fatalf("%s entry %v: %v", key, s, err)
		}
		out = append(out, m)
	}
	return out
}

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

	c := dialServer(t, srv.Addr())
	alice, bob, carol := c.register("alice"), c.register("bob"), c.register("carol")
	a := dialServer(t, srv.Addr())
	a.nativeLogin(alice)
	a.call(`{"msgid":7,"friendid":%d}`, bob)
	gid := a.call(`{"msgid":8,"groupname":"club","groupdesc":"d"}`).int("groupid")
	b := dialServer(t, srv.Addr())
	b.nativeLogin(bob)
	b.call(`{"msgid":7,"friendid":%d}`, alice) // friendship by consent: both add
	b.call(`{"msgid":9,"groupid":%d}`, gid)
	b.call(`{"msgid":3}`)
	var lastSeq int64
	for i := 1; i <= 3; i++ {
		lastSeq = a.call(`{"msgid":6,"to":%d,"msg":"m%d","cmid":"a-%d"}`, bob, i, i).int("seq")
	}
	a.call(`{"msgid":10,"groupid":%d,"msg":"g1","cmid":"a-g1"}`, gid)
	a.call(`{"msgid":6,"to":%d,"msg":"for carol","cmid":"a-c1"}`, carol)

	if code := srv.Term(t); code != 0 {
		t.Fatalf("SIGTERM: exit code %d, want 0", code)
	}
	srv.Restart(t)

	b = dialServer(t, srv.Addr())
	rep := b.classicLogin(bob)
	friends, groups, off := strs(t, rep, "friends"), strs(t, rep, "groups"), strs(t, rep, "offlinemsg")
	if len(friends) != 1 || fmt.Sprint(friends[0]["name"]) != "alice" {
		t.Fatalf("bob's friends after restart: %v", rep)
	}
	if len(groups) != 1 || groups[0]["groupname"] != "club" {
		t.Fatalf("bob's groups after restart: %v", rep)
	}
	var bodies []string
	for _, m := range off {
		bodies = append(bodies, fmt.Sprint(m["msg"]))
	}
	if got := strings.Join(bodies, ","); got != "m1,m2,m3,g1" {
		t.Fatalf("bob's offlinemsg after restart = %s, want m1,m2,m3,g1", got)
	}
	c = dialServer(t, srv.Addr())
	if off := strs(t, c.classicLogin(carol), "offlinemsg"); len(off) != 1 || off[0]["msg"] != "for carol" {
		t.Fatalf("carol's offlinemsg after restart: %v", off)
	}
	a = dialServer(t, srv.Addr())
	a.nativeLogin(alice)
	if seq := a.call(`{"msgid":6,"to":%d,"msg":"m4","cmid":"a-4"}`, bob).int("seq"); seq != lastSeq+1 {
		t.Fatalf("seq after restart = %d, want %d", seq, lastSeq+1)
	}
	// A resend of a message acknowledged before the restart is still a dup.
	if r := a.call(`{"msgid":6,"to":%d,"msg":"m1","cmid":"a-1"}`, bob); r["dup"] != true || r.int("seq") != 1 {
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
	c := dialServer(t, srv.Addr())
	alice, bob := c.register("alice"), c.register("bob")
	a := dialServer(t, srv.Addr())
	a.nativeLogin(alice)

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
			a.nc.SetWriteDeadline(time.Now().Add(readTimeout))
			if _, err := fmt.Fprintf(a.nc, `{"msgid":6,"rid":%d,"to":%d,"msg":"k%d","cmid":"k-%d"}`+"\x00", i, bob, i, i); err != nil {
				return
			}
		}
	}()
	// Reader: records acknowledgements (rid -> seq) until the kill.
	acked := map[int64]int64{}
	for len(acked) < 100 {
		r, err := a.readReply()
		if err != nil {
			t.Fatalf("before the kill: %v", err)
		}
		if r.int("msgid") != 11 || r.int("errno") != 0 {
			t.Fatalf("unexpected reply %v", r)
		}
		acked[r.int("rid")] = r.int("seq")
	}
	srv.Kill(t)
	for {
		r, err := a.readReply()
		if err != nil {
			break
		}
		if r.int("msgid") == 11 && r.int("errno") == 0 {
			acked[r.int("rid")] = r.int("seq")
		}
	}
	close(stop)
	a.nc.Close()
	wg.Wait()

	srv.Restart(t)
	b := dialServer(t, srv.Addr())
	b.nativeLogin(bob)
	stored := map[int64]string{} // seq -> body
	var after int64
	for {
		r := b.call(`{"msgid":14,"to":%d,"after":%d,"limit":200}`, alice, after)
		msgs, _ := r["msgs"].([]any)
		for _, m := range msgs {
			m := reply(m.(map[string]any))
			stored[m.int("seq")] = fmt.Sprint(m["msg"])
			after = m.int("seq")
		}
		if len(msgs) == 0 || after >= r.int("last") {
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
