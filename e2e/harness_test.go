// Package e2e tests a whole clusterchat cluster as it is deployed: real
// PostgreSQL, real Redis, three race-built chatserver processes and real
// nginx (stream) in front of them, all on loopback ports. Clients talk to it
// over real sockets, through nginx and directly to chosen servers, with raw
// classic and native frames and with the Go client (package client).
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// readTimeout bounds every wait for one reply or delivery. Generous because
// three race-built servers, PostgreSQL, Redis and nginx share two cores; a
// passing test never waits for it.
const readTimeout = 20 * time.Second

// cluster is a running cluster: the shared parts, the chatservers and nginx.
type cluster struct {
	pg      *testenv.Postgres
	dsn     string
	redis   *testenv.Redis
	bin     string
	servers []*testenv.Server
	nginx   *testenv.Nginx
	names   atomic.Int64 // for unique user and group names
}

// startCluster starts PostgreSQL (a server of the test's own and a fresh
// database on it), Redis, n chatservers built with -race pointing at both
// (nodes n1..nN, bcrypt cost 4, extra args appended), and nginx's TCP and
// WebSocket proxies in front of them. Cleanup stops everything. It returns
// once every server answers /readyz with 200.
func startCluster(tb testing.TB, n int, extra ...string) *cluster {
	tb.Helper()
	c := &cluster{bin: testenv.BuildServer(tb)}
	c.pg = testenv.NewPostgres(tb)
	c.dsn = c.pg.CreateDB(tb)
	c.redis = testenv.StartRedis(tb)
	addrs, httpAddrs := make([]string, n), make([]string, n)
	for i := range n {
		s := c.startServer(tb, fmt.Sprintf("n%d", i+1), extra...)
		c.servers = append(c.servers, s)
		addrs[i], httpAddrs[i] = s.Addr(), s.HTTPAddr()
	}
	c.nginx = testenv.StartNginx(tb, addrs, httpAddrs)
	return c
}

// startServer starts one more chatserver on the cluster's store and broker,
// stopped when tb ends, and waits until it is ready.
func (c *cluster) startServer(tb testing.TB, node string, extra ...string) *testenv.Server {
	tb.Helper()
	args := append([]string{
		"-store", c.dsn,
		"-broker", c.redis.URL(),
		"-node", node,
		"-bcrypt-cost", "4",
	}, testenv.UpstreamFlags...) // behind nginx's TCP proxy
	args = append(args, extra...)
	s := testenv.StartServer(tb, c.bin, args...)
	waitReady(tb, s, readTimeout)
	return s
}

// waitReady polls s's /readyz until it answers 200.
func waitReady(tb testing.TB, s *testenv.Server, timeout time.Duration) {
	tb.Helper()
	testenv.WaitFor(tb, timeout, "/readyz 200 on "+s.HTTPAddr(), func() bool {
		_, code, err := httpGet(s.HTTPAddr(), "/readyz")
		return err == nil && code == http.StatusOK
	})
}

// name returns a name no other user or group of this cluster has.
func (c *cluster) name(prefix string) string {
	return prefix + strconv.FormatInt(c.names.Add(1), 10)
}

// httpGet fetches path from addr with a bounded wait.
func httpGet(addr, path string) (string, int, error) {
	hc := http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + path)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

var metricLine = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// metrics reads /metrics at addr and returns every sample summed over its
// labels, by metric name.
func metrics(tb testing.TB, addr string) map[string]float64 {
	tb.Helper()
	body, code, err := httpGet(addr, "/metrics")
	if err != nil || code != http.StatusOK {
		tb.Fatalf("GET /metrics on %s: status %d, %v", addr, code, err)
	}
	out := make(map[string]float64)
	for _, m := range metricLine.FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", m[0], err)
		}
		out[m[1]] += v
	}
	return out
}

// user is a registered account.
type user struct {
	id   int64
	name string
	pw   string
}

// newUser registers a fresh user over a classic connection to addr.
func (c *cluster) newUser(tb testing.TB, addr string) user {
	tb.Helper()
	name := c.name("u")
	r := dialRaw(tb, addr)
	defer r.Close()
	r.Sendf(`{"msgid":4,"name":%q,"password":%q}`, name, "pw-"+name)
	o := r.Expect(5, "errno", 0)
	return user{id: o.Int("id"), name: name, pw: "pw-" + name}
}

// ---- raw sockets: exactly the bytes a classic (or hand-made native) client sends

// dialRaw connects a raw protocol client to addr; the connection is closed
// when the test ends.
func dialRaw(tb testing.TB, addr string) *wiretest.Conn {
	tb.Helper()
	return wiretest.Dial(tb, addr, readTimeout)
}

// classicAt connects to addr and logs u in with the classic protocol.
func classicAt(tb testing.TB, addr string, u user) (*wiretest.Conn, wiretest.Obj) {
	tb.Helper()
	r := dialRaw(tb, addr)
	return r, r.ClassicLogin(u.id, u.pw)
}

// friendState returns the state of friend id in a classic login reply ("" if
// id is not listed).
func friendState(tb testing.TB, reply wiretest.Obj, id int64) string {
	tb.Helper()
	for _, f := range reply.Nested(tb, "friends") {
		if f.Int("id") == id {
			return f.Str("state")
		}
	}
	return ""
}

// ---- native clients (package client)

// native is a Go client whose events are collected in the background, so a
// test can wait for any event without caring what else arrived.
type native struct {
	*client.Client
	u    user
	info *client.LoginInfo // the reply of the login nativeAt made

	mu     sync.Mutex
	events []client.Event
}

// nativeAt dials addr (and opts.Addrs when reconnecting), logs u in and
// collects events until the test ends.
func nativeAt(tb testing.TB, addr string, u user, opts client.Options) *native {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	cl, err := client.Dial(ctx, addr, opts)
	if err != nil {
		tb.Fatalf("client.Dial %s: %v", addr, err)
	}
	n := &native{Client: cl, u: u}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range cl.Events() {
			n.mu.Lock()
			n.events = append(n.events, e)
			n.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { cl.Close(); <-done })
	info, err := cl.Login(ctx, u.id, u.pw)
	if err != nil {
		tb.Fatalf("login %d at %s: %v", u.id, addr, err)
	}
	n.info = info
	return n
}

// find returns the events that match.
func (n *native) find(match func(client.Event) bool) []client.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []client.Event
	for _, e := range n.events {
		if match(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits until an event matches and returns it.
func (n *native) waitEvent(tb testing.TB, what string, match func(client.Event) bool) client.Event {
	tb.Helper()
	var got client.Event
	testenv.WaitFor(tb, readTimeout, fmt.Sprintf("user %d: %s", n.u.id, what), func() bool {
		l := n.find(match)
		if len(l) > 0 {
			got = l[0]
			return true
		}
		return false
	})
	return got
}

// messages returns the chat messages emitted so far with Body text in conv
// ("" for any conversation).
func (n *native) messages(conv string) []*clusterchat.Message {
	var out []*clusterchat.Message
	for _, e := range n.find(func(e client.Event) bool {
		return e.Kind == client.EventMessage && (conv == "" || e.Message.Conv == conv)
	}) {
		out = append(out, e.Message)
	}
	return out
}

// waitMessage waits for a message with body text from user from.
func (n *native) waitMessage(tb testing.TB, from int64, text string) *clusterchat.Message {
	tb.Helper()
	e := n.waitEvent(tb, fmt.Sprintf("message %q from %d", text, from), func(e client.Event) bool {
		return e.Kind == client.EventMessage && e.Message.From == from && e.Message.Body == text
	})
	return e.Message
}

// ctx is a context bounded by readTimeout for one call.
func ctx(tb testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), readTimeout)
	tb.Cleanup(cancel)
	return c
}
