package server_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// readTimeout bounds every wait for a reply. Generous because -race on two
// cores is slow; a passing test never waits for it.
const readTimeout = 10 * time.Second

// Tests start servers with wiretest.StartServer (one in-process server on
// loopback ports with a temporary SQLite file, the in-memory broker and
// presence) and talk to them with wiretest.Conn.

// metric returns the value of a counter or gauge (no labels) from ts's
// /metrics.
func metric(tb testing.TB, ts *wiretest.Server, name string) float64 {
	tb.Helper()
	return scrapeMetric(tb, ts.HTTP, name)
}

// waitAccepted waits until the server has committed n chat messages in
// all: a classic sender gets no acknowledgement, so a test that needs its
// messages stored (to find them offline) waits for this instead.
func waitAccepted(tb testing.TB, ts *wiretest.Server, n int) {
	tb.Helper()
	testenv.WaitFor(tb, readTimeout, fmt.Sprintf("%d messages committed", n), func() bool {
		return metric(tb, ts, "chat_messages_accepted_total") >= float64(n)
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

// Helpers for the common requests. Classic ones send exactly what the
// classic client sends.

// register creates a user over a fresh connection and returns its id.
func register(tb testing.TB, ts *wiretest.Server, name string) int64 {
	tb.Helper()
	c := wiretest.Dial(tb, ts.TCP, readTimeout)
	defer c.Close()
	return c.Register(name, "pw-"+name)
}

// user is a registered user with its password.
type user struct {
	id   int64
	name string
	pw   string
}

func newUser(tb testing.TB, ts *wiretest.Server, name string) user {
	tb.Helper()
	return user{id: register(tb, ts, name), name: name, pw: "pw-" + name}
}

// classic connects and logs u in with the classic protocol.
func (u user) classic(tb testing.TB, ts *wiretest.Server) (*wiretest.Conn, wiretest.Obj) {
	tb.Helper()
	c := wiretest.Dial(tb, ts.TCP, readTimeout)
	return c, c.ClassicLogin(u.id, u.pw)
}

// native connects and logs u in with the native protocol.
func (u user) native(tb testing.TB, ts *wiretest.Server) (*wiretest.Conn, wiretest.Obj) {
	tb.Helper()
	c := wiretest.Dial(tb, ts.TCP, readTimeout)
	return c, c.NativeLogin(u.id, u.pw)
}

// openFriends configures the classic server's instant friendship (-friends
// open), for the tests of what a friendship then does.
func openFriends(c *server.Config) { c.Friends = server.FriendsOpen }

// befriend makes a and b friends through native sessions: a adds b, and
// when that was only a request (friendship by consent) b adds a back.
func befriend(tb testing.TB, ts *wiretest.Server, a, b user) {
	tb.Helper()
	c, _ := a.native(tb, ts)
	defer logoutClose(c)
	if rep := c.Call(7, `{"msgid":7,"friendid":%d}`, b.id); rep.Has("friend") && rep.M["friend"] == false {
		d, _ := b.native(tb, ts)
		defer logoutClose(d)
		d.Call(7, `{"msgid":7,"friendid":%d}`, a.id)
	}
}

// logoutClose ends a native helper session and waits for the server to
// have ended it (presence released, friends told) before closing the
// socket: a bare close ends it later, and a test's next login could race
// with that ending (a presence event arriving where a chat was expected).
func logoutClose(c *wiretest.Conn) {
	c.TB.Helper()
	c.CallSkipping(3, `{"msgid":3}`)
	c.Close()
}

// mkGroup creates a group as creator (native) and returns its id.
func mkGroup(tb testing.TB, ts *wiretest.Server, creator user, name string, members ...user) int64 {
	tb.Helper()
	c, _ := creator.native(tb, ts)
	defer logoutClose(c)
	gid := c.Call(8, `{"msgid":8,"groupname":%q,"groupdesc":"about %s"}`, name, name).Int("groupid")
	for _, m := range members {
		mc, _ := m.native(tb, ts)
		mc.Call(9, `{"msgid":9,"groupid":%d}`, gid)
		logoutClose(mc)
	}
	return gid
}
