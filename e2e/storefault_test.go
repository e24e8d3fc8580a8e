package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// The store fault tests (issue 14): PostgreSQL restarted (fast shutdown,
// what pg_ctl restart -m fast does), PostgreSQL killed with SIGKILL and
// started again (crash recovery), and the primary killed with a
// synchronous standby promoted in its place, each under traffic from
// classic and native senders to classic and native recipients across two
// servers. The servers' committers ride the outage out (server/committer.go):
// every message is delivered exactly once, in order, and no client is sent
// errno 9 for an outage shorter than the retry bound (-store-retry, 15 s).
// A classic sender sees no acknowledgement, so every message it wrote,
// during the outage included, must reach its recipient once.

// sfPace is the pause between one sender's messages: a steady trickle that
// keeps every committer busy through the outage without loading two cores.
const sfPace = 30 * time.Millisecond

func TestNoLossStoreFaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		standby bool // a synchronous standby, and the servers' DSN lists it
		// fault takes the store down; up brings it back.
		fault, up func(t *testing.T, c *cluster, standby *testenv.Postgres)
	}{
		{
			name:  "restart",
			fault: func(t *testing.T, c *cluster, _ *testenv.Postgres) { c.pg.Stop(t) },
			up:    func(t *testing.T, c *cluster, _ *testenv.Postgres) { c.pg.Start(t) },
		},
		{
			name:  "sigkill",
			fault: func(t *testing.T, c *cluster, _ *testenv.Postgres) { c.pg.Kill(t) },
			up:    func(t *testing.T, c *cluster, _ *testenv.Postgres) { c.pg.Start(t) },
		},
		{
			name:    "failover-sync",
			standby: true,
			fault:   func(t *testing.T, c *cluster, _ *testenv.Postgres) { c.pg.Kill(t) },
			up:      func(t *testing.T, _ *cluster, standby *testenv.Postgres) { standby.Promote(t) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cluster{bin: testenv.BuildServer(t)}
			c.pg = testenv.NewPostgres(t)
			c.dsn = c.pg.CreateDB(t)
			var standby *testenv.Postgres
			if tc.standby {
				standby = c.pg.StartStandby(t, true)
				c.dsn = testenv.FailoverDSN(t, c.dsn, c.pg, standby)
			}
			c.redis = testenv.StartRedis(t)
			for i := range 2 {
				c.servers = append(c.servers, c.startServer(t, fmt.Sprintf("n%d", i+1)))
			}
			sf := newSFTraffic(t, c)
			sf.waitProgress(t, "traffic before the fault", 5)

			down, before := time.Now(), sf.total()
			tc.fault(t, c, standby)
			// The committers hold the messages: /readyz says so (the store
			// stays down until it does, so this is no race).
			for _, s := range c.servers {
				testenv.WaitFor(t, readTimeout, "/readyz reporting failing store writes on "+s.HTTPAddr(), func() bool {
					body, code, err := httpGet(s.HTTPAddr(), "/readyz")
					return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "store writes: failing")
				})
			}
			tc.up(t, c, standby)
			for _, s := range c.servers {
				waitReady(t, s, 60*time.Second)
			}
			t.Logf("%s: store out for %v (from the fault until every server was ready again); %d messages sent meanwhile",
				tc.name, time.Since(down).Round(10*time.Millisecond), sf.total()-before)
			sf.waitProgress(t, "traffic after the fault", 5)
			sf.stop()
			sf.verify(t, c)

			var retries, refused float64
			for _, s := range c.servers {
				m := metrics(t, s.HTTPAddr())
				retries += m["chat_store_append_retries_total"]
				refused += errnoCount(t, s.HTTPAddr(), clusterchat.EUNAVAILABLE)
			}
			t.Logf("%s: %d messages sent; %v append retries; %v errno 9 replies", tc.name, sf.total(), retries, refused)
			if refused > 0 {
				t.Errorf("%s: %v errno 9 replies for an outage shorter than the retry bound", tc.name, refused)
			}
			if retries == 0 {
				t.Errorf("%s: no append was retried: the fault missed the traffic", tc.name)
			}
		})
	}
}

// sfPair is one sender and one recipient, each classic or native, on
// different servers.
type sfPair struct {
	name string
	from user
	to   user
	conv string

	classicFrom *wiretest.Conn // the classic sender's connection, else nil
	nativeFrom  *native        // the native sender, else nil
	classicTo   *classicSink
	nativeTo    *native

	mu   sync.Mutex
	sent []string // classic: every message written; native: every one acknowledged
	err  error    // a native send that failed, or an error reply to the classic sender
}

func (p *sfPair) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

// sfTraffic is the senders of one store fault test.
type sfTraffic struct {
	pairs []*sfPair
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// newSFTraffic makes four pairs (classic and native, to classic and
// native), each across the two servers, and starts their senders.
func newSFTraffic(t *testing.T, c *cluster) *sfTraffic {
	sf := &sfTraffic{done: make(chan struct{})}
	for i, kind := range []string{"classic->classic", "classic->native", "native->classic", "native->native"} {
		fromAddr, toAddr := c.servers[i%2].Addr(), c.servers[(i+1)%2].Addr()
		p := &sfPair{name: kind, from: c.newUser(t, fromAddr), to: c.newUser(t, toAddr)}
		p.conv = clusterchat.DirectConv(p.from.id, p.to.id)
		if strings.HasPrefix(kind, "classic") {
			p.classicFrom, _ = classicAt(t, fromAddr, p.from)
			go p.watchClassicSender()
		} else {
			p.nativeFrom = nativeAt(t, fromAddr, p.from, client.Options{})
		}
		if strings.HasSuffix(kind, "classic") {
			r, _ := classicAt(t, toAddr, p.to)
			p.classicTo = newClassicSink(r)
		} else {
			p.nativeTo = nativeAt(t, toAddr, p.to, client.Options{})
		}
		sf.pairs = append(sf.pairs, p)
	}
	t.Cleanup(sf.stop)
	for _, p := range sf.pairs {
		sf.wg.Add(1)
		go sf.send(p)
	}
	return sf
}

// watchClassicSender reads the classic sender's connection: it should
// receive nothing at all (no acks in the classic protocol, no messages
// sent to it), an error reply least of all.
func (p *sfPair) watchClassicSender() {
	for {
		o, err := p.classicFrom.ReadObj(time.Hour)
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.err == nil {
			p.err = fmt.Errorf("classic sender got %s", strings.TrimSpace(o.Raw))
		}
		p.mu.Unlock()
	}
}

// send sends numbered messages until stop; a native send waits for its
// ack (the client retries through timeouts with the same cmid).
func (sf *sfTraffic) send(p *sfPair) {
	defer sf.wg.Done()
	for k := 0; ; k++ {
		select {
		case <-sf.done:
			return
		case <-time.After(sfPace):
		}
		body := fmt.Sprintf("%s %d->%d #%d", p.name, p.from.id, p.to.id, k)
		if p.classicFrom != nil {
			if err := p.classicFrom.TrySend(fmt.Sprintf(`{"msgid":6,"to":%d,"msg":%q}`, p.to.id, body) + "\x00"); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := p.nativeFrom.Send(ctx, p.to.id, body)
			cancel()
			if err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
		}
		p.mu.Lock()
		p.sent = append(p.sent, body)
		p.mu.Unlock()
	}
}

// waitProgress waits until every pair has sent n more messages.
func (sf *sfTraffic) waitProgress(t *testing.T, what string, n int) {
	t.Helper()
	base := make([]int, len(sf.pairs))
	for i, p := range sf.pairs {
		base[i] = p.count()
	}
	testenv.WaitFor(t, 60*time.Second, what, func() bool {
		for i, p := range sf.pairs {
			if p.count() < base[i]+n {
				return false
			}
		}
		return true
	})
}

// stop ends the senders and waits for them.
func (sf *sfTraffic) stop() {
	sf.once.Do(func() {
		close(sf.done)
		sf.wg.Wait()
	})
}

func (sf *sfTraffic) total() int {
	n := 0
	for _, p := range sf.pairs {
		n += p.count()
	}
	return n
}

// verify checks that every recipient got every message sent to it exactly
// once, in order, live: the recipients stayed connected through the fault.
func (sf *sfTraffic) verify(t *testing.T, c *cluster) {
	t.Helper()
	for _, p := range sf.pairs {
		p.mu.Lock()
		sent, perr := p.sent, p.err
		p.mu.Unlock()
		if perr != nil {
			t.Errorf("%s: sender: %v", p.name, perr)
		}
		var got []string
		if p.nativeTo != nil {
			if err := p.nativeTo.Sync(ctx(t)); err != nil {
				t.Fatalf("%s: recipient sync: %v", p.name, err)
			}
		}
		received := func() []string {
			if p.nativeTo != nil {
				var out []string
				for _, m := range p.nativeTo.messages(p.conv) {
					out = append(out, m.Body)
				}
				return out
			}
			p.classicTo.mu.Lock()
			defer p.classicTo.mu.Unlock()
			return append([]string(nil), p.classicTo.got...)
		}
		// Bounded: a classic message still held by a committer when the
		// senders stopped arrives once it commits.
		deadline := time.Now().Add(readTimeout)
		for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
			got = received()
			if len(got) >= len(sent) || time.Now().After(deadline) {
				break
			}
			time.Sleep(delay)
		}
		counts := map[string]int{}
		for _, b := range got {
			counts[b]++
		}
		var lost, dup []string
		for _, b := range sent {
			switch counts[b] {
			case 0:
				lost = append(lost, b)
			case 1:
			default:
				dup = append(dup, b)
			}
		}
		if len(lost) > 0 || len(dup) > 0 || len(got) != len(sent) {
			t.Errorf("%s: %d sent, %d received; lost %q; duplicated %q", p.name, len(sent), len(got), lost, dup)
			continue
		}
		for i := range sent {
			if got[i] != sent[i] {
				t.Errorf("%s: message %d is %q, sent %q (out of order)", p.name, i, got[i], sent[i])
				break
			}
		}
		if p.nativeTo != nil {
			checkSeqs(t, p.nativeTo.messages(p.conv), len(sent))
		}
	}
}

var errnoLine = regexp.MustCompile(`(?m)^chat_errors_total\{errno="(\d+)"\} (\S+)$`)

// errnoCount returns how many error replies with errno code the server at
// addr has sent (chat_errors_total).
func errnoCount(tb testing.TB, addr string, code int) float64 {
	tb.Helper()
	body, status, err := httpGet(addr, "/metrics")
	if err != nil || status != http.StatusOK {
		tb.Fatalf("GET /metrics on %s: status %d, %v", addr, status, err)
	}
	for _, m := range errnoLine.FindAllStringSubmatch(body, -1) {
		if m[1] == strconv.Itoa(code) {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return 0
}

// TestStoreRetryBounds: past its bounds the committer refuses with errno 9
// rather than holding on. With the store down, a server with a tiny
// -store-retry-bytes refuses a second message at once while the first
// waits (and is stored once the store is back); a server with a short
// -store-retry refuses a message after it; both take messages again once
// the store is back.
func TestStoreRetryBounds(t *testing.T) {
	c := &cluster{bin: testenv.BuildServer(t)}
	c.pg = testenv.NewPostgres(t)
	c.dsn = c.pg.CreateDB(t)
	start := func(node string, extra ...string) *testenv.Server {
		s := testenv.StartServer(t, c.bin, append([]string{"-store", c.dsn, "-broker", "memory", "-node", node, "-bcrypt-cost", "4"}, extra...)...)
		waitReady(t, s, readTimeout)
		return s
	}
	byBytes := start("bytes", "-store-retry", "1m", "-store-retry-bytes", "1")
	byTime := start("time", "-store-retry", "1s")
	a, b := c.newUser(t, byBytes.Addr()), c.newUser(t, byBytes.Addr())
	ra, rt := dialRaw(t, byBytes.Addr()), dialRaw(t, byTime.Addr())
	ra.NativeLogin(a.id, a.pw)
	rt.NativeLogin(a.id, a.pw)
	chat := func(r *wiretest.Conn, rid int, text string) {
		r.Sendf(`{"msgid":6,"rid":%d,"to":%d,"msg":%q,"cmid":"c%d"}`, rid, b.id, text, rid)
	}
	chat(ra, 1, "before") // warms the server's caches of b
	ra.Expect(11, "req", 6, "rid", 1, "errno", 0)
	chat(rt, 2, "before too")
	rt.Expect(11, "req", 6, "rid", 2, "errno", 0)

	c.pg.Stop(t)
	chat(ra, 3, "held")
	testenv.WaitFor(t, readTimeout, "the committer retrying", func() bool {
		return metrics(t, byBytes.HTTPAddr())["chat_store_held_messages"] == 0 &&
			metrics(t, byBytes.HTTPAddr())["chat_store_append_retries_total"] > 0
	})
	chat(ra, 4, "over the bytes bound")
	ra.Expect(11, "req", 6, "rid", 4, "errno", clusterchat.EUNAVAILABLE)
	chat(rt, 5, "over the time bound")
	rt.Expect(11, "req", 6, "rid", 5, "errno", clusterchat.EUNAVAILABLE)

	c.pg.Start(t)
	held := ra.Expect(11, "req", 6, "rid", 3, "errno", 0)
	chat(rt, 6, "after")
	rt.Expect(11, "req", 6, "rid", 6, "errno", 0)
	if seq := held.Int("seq"); seq != 3 {
		t.Errorf("the held message got seq %d, want 3 (right after the two before the outage)", seq)
	}
	waitReady(t, byBytes, readTimeout)
	waitReady(t, byTime, readTimeout)
}
