package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// readTimeout bounds every wait for a reply. Generous because -race on two
// cores is slow; a passing test never waits for it.
const readTimeout = 10 * time.Second

// testServer is one in-process server (internal/wiretest) on loopback
// ports with a temporary SQLite file, the in-memory broker and presence.
type testServer struct {
	*server.Server
	addr string
	http string
	db   string
	logs *wiretest.LogBuffer
}

// startServer runs a server for the test; edit adjusts its Config.
func startServer(tb testing.TB, edit func(*server.Config)) *testServer {
	tb.Helper()
	w := wiretest.StartServer(tb, edit)
	return &testServer{Server: w.Server(), addr: w.TCP, http: w.HTTP, db: w.DB, logs: w.Logs}
}

// metric returns the value of a counter or gauge (no labels) from /metrics.
func (ts *testServer) metric(tb testing.TB, name string) float64 {
	tb.Helper()
	return scrapeMetric(tb, ts.http, name)
}

// waitAccepted waits until the server has committed n chat messages in
// all: a classic sender gets no acknowledgement, so a test that needs its
// messages stored (to find them offline) waits for this instead.
func (ts *testServer) waitAccepted(tb testing.TB, n int) {
	tb.Helper()
	testenv.WaitFor(tb, readTimeout, fmt.Sprintf("%d messages committed", n), func() bool {
		return ts.metric(tb, "chat_messages_accepted_total") >= float64(n)
	})
}

var metricLine = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)

// scrapeMetric reads /metrics at httpAddr and sums the samples of name
// (over all label sets); 0 when absent.
func scrapeMetric(tb testing.TB, httpAddr, name string) float64 {
	tb.Helper()
	body, code := httpGet(tb, httpAddr, "/metrics")
	if code != http.StatusOK {
		tb.Fatalf("/metrics: status %d", code)
	}
	var sum float64
	for _, m := range metricLine.FindAllStringSubmatch(body, -1) {
		key := m[1]
		if i := strings.IndexByte(key, '{'); i >= 0 {
			key = key[:i]
		}
		if key != name {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			tb.Fatalf("metric %s: %v", m[0], err)
		}
		sum += v
	}
	return sum
}

func httpGet(tb testing.TB, addr, path string) (string, int) {
	tb.Helper()
	c := http.Client{Timeout: readTimeout}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	return string(b), resp.StatusCode
}

// client is the shared raw protocol client (wiretest.Conn) under the names
// this package's tests use: tb may be swapped for a subtest's.
type client struct {
	tb  testing.TB
	nc  net.Conn
	br  *bufio.Reader
	rid atomic.Int64
}

// dial connects a client to addr; it is closed when the test ends.
func dial(tb testing.TB, addr string) *client {
	tb.Helper()
	w := wiretest.Dial(tb, addr, readTimeout)
	return &client{tb: tb, nc: w.NC, br: w.BR}
}

// w is c as a wiretest.Conn on the same socket, reader and rid counter.
func (c *client) w() *wiretest.Conn {
	return wiretest.Wrap(c.tb, c.nc, c.br, &c.rid, readTimeout)
}

func (c *client) send(raw string)                          { c.tb.Helper(); c.w().Send(raw) }
func (c *client) sendf(format string, a ...any)            { c.tb.Helper(); c.w().Sendf(format, a...) }
func (c *client) line() string                             { c.tb.Helper(); return c.w().Line() }
func (c *client) readLine(d time.Duration) (string, error) { return c.w().ReadLine(d) }
func (c *client) next() obj                                { c.tb.Helper(); return toObj(c.w().Next()) }
func (c *client) expect(msgid int, kv ...any) obj {
	c.tb.Helper()
	return toObj(c.w().Expect(msgid, kv...))
}
func (c *client) expectErr(req, errno int) obj {
	c.tb.Helper()
	return toObj(c.w().ExpectErr(req, errno))
}
func (c *client) ping()                { c.tb.Helper(); c.w().Ping() }
func (c *client) expectClosed() string { c.tb.Helper(); return c.w().ExpectClosed() }
func (c *client) register(name, password string) int64 {
	c.tb.Helper()
	return c.w().Register(name, password)
}
func (c *client) classicLogin(id int64, password string) obj {
	c.tb.Helper()
	return toObj(c.w().ClassicLogin(id, password))
}
func (c *client) nativeLogin(id int64, password string) obj {
	c.tb.Helper()
	return toObj(c.w().NativeLogin(id, password))
}
func (c *client) req(format string, a ...any) int64 { c.tb.Helper(); return c.w().Req(format, a...) }
func (c *client) call(req int, format string, a ...any) obj {
	c.tb.Helper()
	return toObj(c.w().Call(req, format, a...))
}

// obj is a decoded server object (wiretest.Obj) under this package's names.
type obj struct {
	m   map[string]any
	raw string
}

func decodeObj(tb testing.TB, line string) obj {
	tb.Helper()
	return toObj(wiretest.MustDecode(tb, line))
}

func toObj(o wiretest.Obj) obj               { return obj{m: o.M, raw: o.Raw} }
func (o obj) w() wiretest.Obj                { return wiretest.Obj{M: o.m, Raw: o.raw} }
func (o obj) has(k string) bool              { return o.w().Has(k) }
func (o obj) int(k string) int64             { return o.w().Int(k) }
func (o obj) str(k string) string            { return o.w().Str(k) }
func (o obj) list(k string) []any            { return o.w().List(k) }
func (o obj) check(tb testing.TB, kv ...any) { tb.Helper(); o.w().Check(tb, kv...) }

// Helpers for the common requests. Classic ones send exactly what the
// classic client sends.

// register creates a user over a fresh connection and returns its id.
func register(tb testing.TB, ts *testServer, name string) int64 {
	tb.Helper()
	c := dial(tb, ts.addr)
	defer c.nc.Close()
	return c.register(name, "pw-"+name)
}

// user is a registered user with its password.
type user struct {
	id   int64
	name string
	pw   string
}

func newUser(tb testing.TB, ts *testServer, name string) user {
	tb.Helper()
	return user{id: register(tb, ts, name), name: name, pw: "pw-" + name}
}

// classic connects and logs u in with the classic protocol.
func (u user) classic(tb testing.TB, ts *testServer) (*client, obj) {
	tb.Helper()
	c := dial(tb, ts.addr)
	return c, c.classicLogin(u.id, u.pw)
}

// native connects and logs u in with the native protocol.
func (u user) native(tb testing.TB, ts *testServer) (*client, obj) {
	tb.Helper()
	c := dial(tb, ts.addr)
	return c, c.nativeLogin(u.id, u.pw)
}

// openFriends configures the classic server's instant friendship (-friends
// open), for the tests of what a friendship then does.
func openFriends(c *server.Config) { c.Friends = server.FriendsOpen }

// befriend makes a and b friends through native sessions: a adds b, and
// when that was only a request (friendship by consent) b adds a back.
func befriend(tb testing.TB, ts *testServer, a, b user) {
	tb.Helper()
	c, _ := a.native(tb, ts)
	defer c.logoutClose()
	if rep := c.call(7, `{"msgid":7,"friendid":%d}`, b.id); rep.has("friend") && rep.m["friend"] == false {
		d, _ := b.native(tb, ts)
		defer d.logoutClose()
		d.call(7, `{"msgid":7,"friendid":%d}`, a.id)
	}
}

// logoutClose ends a native helper session and waits for the server to
// have ended it (presence released, friends told) before closing the
// socket: a bare close ends it later, and a test's next login could race
// with that ending (a presence event arriving where a chat was expected).
func (c *client) logoutClose() {
	c.tb.Helper()
	c.w().CallSkipping(3, `{"msgid":3}`)
	c.nc.Close()
}

// mkGroup creates a group as creator (native) and returns its id.
func mkGroup(tb testing.TB, ts *testServer, creator user, name string, members ...user) int64 {
	tb.Helper()
	c, _ := creator.native(tb, ts)
	defer c.logoutClose()
	gid := c.call(8, `{"msgid":8,"groupname":%q,"groupdesc":"about %s"}`, name, name).int("groupid")
	for _, m := range members {
		mc, _ := m.native(tb, ts)
		mc.call(9, `{"msgid":9,"groupid":%d}`, gid)
		mc.logoutClose()
	}
	return gid
}
