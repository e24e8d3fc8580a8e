package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat/inmem"
	"clusterchat/internal/testenv"
	"clusterchat/server"
	"clusterchat/sqlite"
)

// readTimeout bounds every wait for a reply. Generous because -race on two
// cores is slow; a passing test never waits for it.
const readTimeout = 10 * time.Second

// closeTimeout is how long a test waits for the server to close a socket
// (a pass returns as soon as it does).
const closeTimeout = 10 * time.Second

// testServer is one in-process server on loopback ports with a temporary
// SQLite file, the in-memory broker and presence.
type testServer struct {
	*server.Server
	addr string
	http string
	db   string
	logs *syncBuffer
}

// syncBuffer collects the server's log, shown when a test fails.
type syncBuffer struct {
	ch chan []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	select {
	case b.ch <- append([]byte(nil), p...):
	default: // full: drop, the log is only a debugging aid
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	var sb strings.Builder
	for {
		select {
		case p := <-b.ch:
			sb.Write(p)
		default:
			return sb.String()
		}
	}
}

// startServer runs a server for the test; edit adjusts its Config.
func startServer(tb testing.TB, edit func(*server.Config)) *testServer {
	tb.Helper()
	cfg := server.Config{
		Addr:       "127.0.0.1:0",
		HTTPAddr:   "127.0.0.1:0",
		BcryptCost: 4,
		// Tests register many users and send bursts from one address; the
		// rate-limit tests turn the limits back on.
		RateLimitsOff: true,
	}
	if edit != nil {
		edit(&cfg)
	}
	logs := &syncBuffer{ch: make(chan []byte, 4096)}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := filepath.Join(tb.TempDir(), "chat.db")
	store, err := sqlite.Open(db, logger)
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	srv := server.New(cfg, logger)
	broker := inmem.NewBroker(srv)
	presence := inmem.NewPresence()
	srv.Store, srv.Broker, srv.Presence = store, broker, presence
	if err := srv.Open(); err != nil {
		tb.Fatalf("server.Open: %v", err)
	}
	ts := &testServer{Server: srv, addr: srv.Addr().String(), http: srv.HTTPAddr().String(), db: db, logs: logs}
	tb.Cleanup(func() {
		srv.Close()
		presence.Close()
		broker.Close()
		store.Close()
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	return ts
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

// client is a raw protocol client: it writes exactly the bytes a test gives
// it and reads the server's output one line at a time. The server ends every
// object with "\n" and JSON text never holds a raw newline, so one line is
// one object; reading by lines also checks that terminator.
type client struct {
	tb  testing.TB
	nc  net.Conn
	br  *bufio.Reader
	rid atomic.Int64
}

// dial connects a client to addr; it is closed when the test ends.
func dial(tb testing.TB, addr string) *client {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, readTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &client{tb: tb, nc: nc, br: bufio.NewReaderSize(nc, 128<<10)}
}

// send writes raw as it is, in one write.
func (c *client) send(raw string) {
	c.tb.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(readTimeout))
	if _, err := io.WriteString(c.nc, raw); err != nil {
		c.tb.Fatalf("write %.80q: %v", raw, err)
	}
}

// sendf writes one object followed by a NUL byte, as the classic client does.
func (c *client) sendf(format string, args ...any) {
	c.tb.Helper()
	c.send(fmt.Sprintf(format, args...) + "\x00")
}

// line reads the next object's line, terminator included.
func (c *client) line() string {
	c.tb.Helper()
	l, err := c.readLine(readTimeout)
	if err != nil {
		c.tb.Fatalf("reading the next object: %v", err)
	}
	return l
}

func (c *client) readLine(d time.Duration) (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	l, err := c.br.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
		return l, fmt.Errorf("line is not one JSON object: %q", l)
	}
	return l, nil
}

// next reads and decodes the next object.
func (c *client) next() obj {
	c.tb.Helper()
	return decodeObj(c.tb, c.line())
}

// expect reads the next object and checks that it has msgid and, for each
// key/value pair in kv, that field (compared as JSON text).
func (c *client) expect(msgid int, kv ...any) obj {
	c.tb.Helper()
	o := c.next()
	o.check(c.tb, append([]any{"msgid", msgid}, kv...)...)
	return o
}

// expectErr reads an error reply: msgid 11 with req and errno, or the
// classic ack msgid for login (2) and register (5) failures.
func (c *client) expectErr(req, errno int) obj {
	c.tb.Helper()
	o := c.next()
	switch req {
	case 1:
		o.check(c.tb, "msgid", 2, "errno", errno)
	case 4:
		o.check(c.tb, "msgid", 5, "errno", errno)
	default:
		o.check(c.tb, "msgid", 11, "req", req, "errno", errno)
	}
	if o.str("errmsg") == "" {
		c.tb.Fatalf("error reply without errmsg: %s", o.raw)
	}
	return o
}

// ping proves that nothing else was queued before its reply: it sends a
// PING and requires the very next object to be the reply (errno 0, or 8
// when the connection has no session).
func (c *client) ping() {
	c.tb.Helper()
	rid := c.rid.Add(1) + 1000000
	c.sendf(`{"msgid":18,"rid":%d}`, rid)
	o := c.next()
	if o.int("msgid") != 11 || o.int("req") != 18 || (o.int("errno") != 0 && o.int("errno") != 8) {
		c.tb.Fatalf("expected the PING reply, got %s", o.raw)
	}
}

// expectClosed reads until the server closes the connection; it fails if
// the connection is still open after closeTimeout. What arrives before the
// close is returned.
func (c *client) expectClosed() string {
	c.tb.Helper()
	c.nc.SetReadDeadline(time.Now().Add(closeTimeout))
	var got bytes.Buffer
	_, err := io.Copy(&got, c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.tb.Fatalf("connection still open after %v (got %d bytes, starting %.200q)", closeTimeout, got.Len(), got.String())
	}
	return got.String()
}

// obj is a decoded server object; numbers stay json.Number.
type obj struct {
	m   map[string]any
	raw string
}

func decodeObj(tb testing.TB, line string) obj {
	tb.Helper()
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		tb.Fatalf("decode %q: %v", line, err)
	}
	return obj{m: m, raw: line}
}

func (o obj) has(k string) bool { _, ok := o.m[k]; return ok }

func (o obj) int(k string) int64 {
	n, ok := o.m[k].(json.Number)
	if !ok {
		return 0
	}
	v, err := n.Int64()
	if err != nil {
		return 0
	}
	return v
}

func (o obj) str(k string) string {
	s, _ := o.m[k].(string)
	return s
}

func (o obj) list(k string) []any {
	l, _ := o.m[k].([]any)
	return l
}

// check compares fields: kv is key, value pairs, values compared by their
// JSON encoding.
func (o obj) check(tb testing.TB, kv ...any) {
	tb.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		want, _ := json.Marshal(kv[i+1])
		v, ok := o.m[k]
		if !ok {
			tb.Fatalf("field %q missing (want %s) in %s", k, want, o.raw)
		}
		got, _ := json.Marshal(v)
		if string(got) != string(want) {
			tb.Fatalf("field %q = %s, want %s in %s", k, got, want, o.raw)
		}
	}
}

// Helpers for the common requests. Classic ones send exactly what the
// classic client sends.

// register creates a user over a fresh connection and returns its id.
func register(tb testing.TB, ts *testServer, name string) int64 {
	tb.Helper()
	c := dial(tb, ts.addr)
	defer c.nc.Close()
	return c.register(name, "pw-"+name)
}

func (c *client) register(name, password string) int64 {
	c.tb.Helper()
	c.sendf(`{"msgid":4,"name":%q,"password":%q}`, name, password)
	o := c.expect(5, "errno", 0)
	return o.int("id")
}

// classicLogin logs in as the classic client and returns the reply.
func (c *client) classicLogin(id int64, password string) obj {
	c.tb.Helper()
	c.sendf(`{"msgid":1,"id":%d,"password":%q}`, id, password)
	return c.expect(2, "errno", 0, "id", id)
}

// nativeLogin logs in with proto 2 and returns the reply.
func (c *client) nativeLogin(id int64, password string) obj {
	c.tb.Helper()
	rid := c.rid.Add(1)
	c.sendf(`{"msgid":1,"proto":2,"rid":%d,"id":%d,"password":%q}`, rid, id, password)
	return c.expect(2, "rid", rid, "errno", 0, "id", id)
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

// req sends a native request (rid filled in) and returns the rid.
func (c *client) req(format string, args ...any) int64 {
	c.tb.Helper()
	rid := c.rid.Add(1)
	body := fmt.Sprintf(format, args...)
	c.send(`{"rid":` + strconv.FormatInt(rid, 10) + "," + strings.TrimPrefix(body, "{") + "\x00")
	return rid
}

// call sends a native request and reads its reply (msgid 11, rid echoed,
// errno 0).
func (c *client) call(req int, format string, args ...any) obj {
	c.tb.Helper()
	rid := c.req(format, args...)
	return c.expect(11, "req", req, "rid", rid, "errno", 0)
}

// openFriends configures the classic server's instant friendship (-friends
// open), for the tests of what a friendship then does.
func openFriends(c *server.Config) { c.Friends = server.FriendsOpen }

// befriend makes a and b friends through native sessions: a adds b, and
// when that was only a request (friendship by consent) b adds a back.
func befriend(tb testing.TB, ts *testServer, a, b user) {
	tb.Helper()
	c, _ := a.native(tb, ts)
	defer c.nc.Close()
	if rep := c.call(7, `{"msgid":7,"friendid":%d}`, b.id); rep.has("friend") && rep.m["friend"] == false {
		d, _ := b.native(tb, ts)
		defer d.nc.Close()
		d.call(7, `{"msgid":7,"friendid":%d}`, a.id)
	}
}

// mkGroup creates a group as creator (native) and returns its id.
func mkGroup(tb testing.TB, ts *testServer, creator user, name string, members ...user) int64 {
	tb.Helper()
	c, _ := creator.native(tb, ts)
	defer c.nc.Close()
	gid := c.call(8, `{"msgid":8,"groupname":%q,"groupdesc":"about %s"}`, name, name).int("groupid")
	for _, m := range members {
		mc, _ := m.native(tb, ts)
		mc.call(9, `{"msgid":9,"groupid":%d}`, gid)
		mc.nc.Close()
	}
	return gid
}
