package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

const waitTime = 20 * time.Second

// startServer runs a real chatserver (package server in this process,
// SQLite, in-memory broker; see internal/wiretest) on a free loopback port.
func startServer(t *testing.T) string { return startServerWith(t, server.Config{}) }

// startServerWith is startServer with cfg (addresses and bcrypt cost set
// by wiretest).
func startServerWith(t *testing.T, cfg server.Config) string {
	t.Helper()
	return wiretest.StartServer(t, func(c *server.Config) {
		addr, httpAddr, cost := c.Addr, c.HTTPAddr, c.BcryptCost
		*c = cfg
		c.Addr, c.HTTPAddr, c.BcryptCost, c.RateLimitsOff = addr, httpAddr, cost, true
	}).TCP
}

// console is one chatclient run driven by a script.
type console struct {
	t    *testing.T
	name string
	in   *io.PipeWriter
	mu   sync.Mutex
	out  strings.Builder
	mark int // output before mark was already matched
	done chan error
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// startConsole runs chatclient against addr with more flags, if any.
func startConsole(t *testing.T, name, addr string, flags ...string) *console {
	pr, pw := io.Pipe()
	c := &console{t: t, name: name, in: pw, done: make(chan error, 1)}
	args := append([]string{"-addr", addr, "-timeout", "10s"}, flags...)
	go func() { c.done <- run(context.Background(), pr, c, args) }()
	t.Cleanup(func() {
		pw.Close()
		if err := <-c.done; err != nil {
			t.Errorf("%s: run: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, c.output())
		}
	})
	return c
}

func (c *console) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func (c *console) send(lines ...string) {
	for _, l := range lines {
		if _, err := io.WriteString(c.in, l+"\n"); err != nil {
			c.t.Fatalf("%s: write %q: %v", c.name, l, err)
		}
	}
}

// expect waits until the output after the last match matches re, and
// returns the submatches.
func (c *console) expect(re string) []string {
	c.t.Helper()
	rx := regexp.MustCompile(re)
	var m []int
	testenv.WaitFor(c.t, waitTime, c.name+" prints "+re, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		m = rx.FindStringSubmatchIndex(c.out.String()[c.mark:])
		return m != nil
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.out.String()[c.mark:]
	var groups []string
	for i := 0; i < len(m); i += 2 {
		groups = append(groups, s[m[i]:m[i+1]])
	}
	c.mark += m[1]
	return groups
}

func TestConsoleChat(t *testing.T) {
	addr := startServer(t)
	alice := startConsole(t, "alice", addr)
	bob := startConsole(t, "bob", addr)

	alice.send("2", "alice", "pw-a")
	aid := alice.expect(`alice registered, your user id is (\d+)`)[1]
	bob.send("2", "bob", "pw-b")
	bid := bob.expect(`bob registered, your user id is (\d+)`)[1]

	alice.send("1", aid, "wrong")
	alice.expect(`error: `)
	alice.send("1", aid, "pw-a")
	alice.expect(`current login user => id:` + aid + ` name:alice`)
	alice.expect(`type help for commands`)
	alice.send("help")
	alice.expect(`history:g:ID`)
	// Friendship by consent: alice asks, bob sees the request and accepts.
	alice.send("addfriend:" + bid)
	alice.expect(`\* asked bob\(` + bid + `\) to be your friend`)

	bob.send("1", bid, "pw-b")
	bob.expect(`type help for commands`)
	bob.send("requests")
	bob.expect(`from ` + aid + ` alice \(accept:` + aid)
	bob.send("accept:" + aid)
	bob.expect(`\* alice\(` + aid + `\) is now your friend \(online\)`)
	alice.expect(`\* bob\(` + bid + `\) is now your friend \(online\)`)

	alice.send("chat:" + bid + ":hello: there")
	bob.expect(`\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] alice\(` + aid + `\): hello: there\n`)

	alice.send("creategroup:dev:the developers")
	gid := alice.expect(`\* created group (\d+) "dev"`)[1]
	bob.send("addgroup:" + gid)
	bob.expect(`\* joined group ` + gid)
	alice.expect(`\* bob\(` + bid + `\) joined group ` + gid)
	bob.send("groupchat:" + gid + ":hi all")
	alice.expect(`\[group ` + gid + ` "dev"\] \[[^]]+\] bob\(` + bid + `\): hi all\n`)

	bob.send("chat:999:anyone?", "bogus", "history:x")
	bob.expect(`error: .*\n`)
	bob.expect(`error: unknown command "bogus"`)
	bob.expect(`error: usage history`)

	// Messages sent while bob is away are counted and shown at his login.
	bob.send("loginout")
	bob.expect(`3\. quit`)
	alice.expect(`\* bob\(` + bid + `\) is offline`)
	alice.send("chat:"+bid+":while you were out", "groupchat:"+gid+":news")
	alice.send("history:" + bid) // a round trip: both sends are acknowledged
	alice.expect(`while you were out`)
	bob.send("1", bid, "pw-b")
	bob.expect(`alice\(` + aid + `\): 1 unread\n`)
	bob.expect(`group ` + gid + ` "dev": 1 unread\n`)
	bob.expect(`type help for commands`)
	testenv.WaitFor(t, waitTime, "bob's missed messages", func() bool {
		out := bob.output()
		return strings.Contains(out, `alice(`+aid+`): while you were out`) && strings.Contains(out, `"dev"] [`) && strings.Contains(out, "news")
	})

	bob.send("history:" + aid)
	bob.expect(`history of alice\(` + aid + `\)[^\n]*\n[^\n]*hello: there\n[^\n]*while you were out\n[^\n]*end \(2 messages\)`)
	bob.send("history:g:" + gid + ":1")
	bob.expect(`history of group ` + gid + ` "dev"[^\n]*\n[^\n]*news\n[^\n]*end \(1 messages\)`)

	// Read markers: the next login has nothing unread.
	bob.send("loginout", "1", bid, "pw-b")
	bob.expect(`current login user`)
	alice.send("chat:" + bid + ":back again")
	got := bob.expect(`(?s)(.*)back again`)[1]
	if strings.Contains(got, "unread") || strings.Contains(got, "while you were out") || strings.Contains(got, "news") {
		t.Fatalf("second login shows old messages again:\n%s", got)
	}
	bob.send("loginout", "3")
	if err := <-bob.done; err != nil {
		t.Fatal(err)
	}
	bob.done <- nil
}
