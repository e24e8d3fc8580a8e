// Package e2e tests a whole clusterchat cluster as it is deployed: real
// PostgreSQL, real Redis, three race-built chatserver processes and real
// nginx (stream) in front of them, all on loopback ports. Clients talk to it
// over real sockets, through nginx and directly to chosen servers, with raw
// classic and native frames and with the Go client (package client).
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
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
	}, extra...)
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
	defer r.close()
	r.sendf(`{"msgid":4,"name":%q,"password":%q}`, name, "pw-"+name)
	o := r.expect(5, "errno", 0)
	return user{id: o.int("id"), name: name, pw: "pw-" + name}
}

// ---- raw sockets: exactly the bytes a classic (or hand-made native) client sends

// raw is a protocol client on a bare socket: it writes what the test gives
// it and reads the server's output one object (one line) at a time.
type raw struct {
	tb  testing.TB
	nc  net.Conn
	br  *bufio.Reader
	rid atomic.Int64
}

// dialRaw connects to addr; the connection is closed when the test ends.
func dialRaw(tb testing.TB, addr string) *raw {
	tb.Helper()
	nc, err := net.DialTimeout("tcp", addr, readTimeout)
	if err != nil {
		tb.Fatalf("dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { nc.Close() })
	return &raw{tb: tb, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

func (r *raw) close() { r.nc.Close() }

// sendf writes one object followed by a NUL byte, as the classic client does.
func (r *raw) sendf(format string, args ...any) {
	r.tb.Helper()
	if err := r.trySend(fmt.Sprintf(format, args...)); err != nil {
		r.tb.Fatalf("write: %v", err)
	}
}

func (r *raw) trySend(s string) error {
	r.nc.SetWriteDeadline(time.Now().Add(readTimeout))
	_, err := io.WriteString(r.nc, s+"\x00")
	return err
}

// readObj reads the next object within d.
func (r *raw) readObj(d time.Duration) (obj, error) {
	r.nc.SetReadDeadline(time.Now().Add(d))
	l, err := r.br.ReadString('\n')
	if err != nil {
		return obj{}, err
	}
	return decodeObj(l)
}

// next reads the next object or fails the test.
func (r *raw) next() obj {
	r.tb.Helper()
	o, err := r.readObj(readTimeout)
	if err != nil {
		r.tb.Fatalf("reading from %s: %v", r.nc.RemoteAddr(), err)
	}
	return o
}

// expect reads the next object and checks msgid and the kv pairs.
func (r *raw) expect(msgid int, kv ...any) obj {
	r.tb.Helper()
	o := r.next()
	o.check(r.tb, append([]any{"msgid", msgid}, kv...)...)
	return o
}

// ping is a barrier: the very next object must be the PING reply, so
// everything the server had queued for this connection was read before.
func (r *raw) ping() {
	r.tb.Helper()
	rid := 1000000 + r.rid.Add(1)
	r.sendf(`{"msgid":18,"rid":%d}`, rid)
	r.expect(11, "req", 18, "rid", rid, "errno", 0)
}

// classicLogin logs u in with the classic protocol and returns the reply.
func (r *raw) classicLogin(u user) obj {
	r.tb.Helper()
	r.sendf(`{"msgid":1,"id":%d,"password":%q}`, u.id, u.pw)
	return r.expect(2, "errno", 0, "id", u.id)
}

// nativeLogin logs u in with proto 2 and returns the reply.
func (r *raw) nativeLogin(u user) obj {
	r.tb.Helper()
	rid := r.rid.Add(1)
	r.sendf(`{"msgid":1,"proto":2,"rid":%d,"id":%d,"password":%q}`, rid, u.id, u.pw)
	return r.expect(2, "rid", rid, "errno", 0, "id", u.id)
}

// call sends a native request with a fresh rid and reads its successful reply.
func (r *raw) call(req int, format string, args ...any) obj {
	r.tb.Helper()
	rid := r.rid.Add(1)
	body := fmt.Sprintf(format, args...)
	r.sendf(`{"rid":%d,%s`, rid, strings.TrimPrefix(body, "{"))
	return r.expect(11, "req", req, "rid", rid, "errno", 0)
}

// classicAt connects to addr and logs u in with the classic protocol.
func classicAt(tb testing.TB, addr string, u user) (*raw, obj) {
	tb.Helper()
	r := dialRaw(tb, addr)
	return r, r.classicLogin(u)
}

// obj is a decoded server object; numbers stay json.Number.
type obj struct {
	m   map[string]any
	raw string
}

func decodeObj(line string) (obj, error) {
	d := json.NewDecoder(strings.NewReader(line))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return obj{}, fmt.Errorf("decode %q: %v", line, err)
	}
	return obj{m: m, raw: strings.TrimSpace(line)}, nil
}

func (o obj) int(k string) int64 {
	n, _ := o.m[k].(json.Number)
	v, _ := n.Int64()
	return v
}

func (o obj) str(k string) string {
	s, _ := o.m[k].(string)
	return s
}

// strings returns a classic nested array: each element a JSON text, decoded.
func (o obj) nested(tb testing.TB, k string) []obj {
	tb.Helper()
	l, _ := o.m[k].([]any)
	out := make([]obj, 0, len(l))
	for _, v := range l {
		s, ok := v.(string)
		if !ok {
			tb.Fatalf("%s: element %v is not a JSON string in %s", k, v, o.raw)
		}
		e, err := decodeObj(s)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// check compares fields by their JSON encoding; kv is key, value pairs.
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

// friendState returns the state of friend id in a classic login reply ("" if
// id is not listed).
func friendState(tb testing.TB, reply obj, id int64) string {
	tb.Helper()
	for _, f := range reply.nested(tb, "friends") {
		if f.int("id") == id {
			return f.str("state")
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
