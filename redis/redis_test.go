package redis

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"clusterchat"
	"clusterchat/brokertest"
	"clusterchat/internal/testenv"
	"clusterchat/limitertest"
	"clusterchat/presencetest"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// fastBroker keeps fault tests quick: short timeouts and backoff.
var fastBroker = BrokerOptions{
	PublishTimeout: 2 * time.Second,
	DialTimeout:    time.Second,
	MinBackoff:     10 * time.Millisecond,
	MaxBackoff:     100 * time.Millisecond,
}

func newBroker(t *testing.T, r *testenv.Redis, h clusterchat.BrokerHandler) *Broker {
	t.Helper()
	b, err := NewBrokerWithOptions(context.Background(), r.URL(), h, testLogger(t), fastBroker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBroker(t *testing.T) {
	r := testenv.StartRedis(t)
	brokertest.Run(t, func(t *testing.T, h clusterchat.BrokerHandler) clusterchat.Broker {
		return newBroker(t, r, h)
	})
}

func TestPresence(t *testing.T) {
	r := testenv.StartRedis(t)
	presencetest.Run(t, func(t *testing.T, node string) clusterchat.Presence {
		return newPresence(t, r, node, PresenceOptions{})
	})
}

func newPresence(t *testing.T, r *testenv.Redis, node string, opt PresenceOptions) *Presence {
	t.Helper()
	p, err := NewPresenceWithOptions(context.Background(), r.URL(), node, testLogger(t), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestNewUnreachable(t *testing.T) {
	url := "redis://" + testenv.Addr(testenv.FreePort(t))
	if _, err := NewBrokerWithOptions(context.Background(), url, &brokertest.Recorder{}, nil, fastBroker); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Errorf("NewBroker: err=%v, want EUNAVAILABLE", err)
	}
	if _, err := NewPresence(context.Background(), url, "n", nil); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Errorf("NewPresence: err=%v, want EUNAVAILABLE", err)
	}
}

// TestBrokerReconnect stops Redis under a subscribed broker and starts it
// again on the same port: the broker must fail fast meanwhile, then restore
// its subscriptions by itself before calling HandleReconnect.
func TestBrokerReconnect(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rec := &brokertest.Recorder{}
	b := newBroker(t, r, rec)
	ch := clusterchat.UserChannel(42)
	for range 2 { // counted twice: restored once
		if err := b.Subscribe(ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Publish(ctx, ch, []byte("before")); err != nil {
		t.Fatal(err)
	}
	rec.WaitCount(t, ch, 1)

	r.Stop(t)
	testenv.WaitFor(t, 10*time.Second, "broker to notice", func() bool { return b.Ready(ctx) != nil })
	if err := b.Publish(ctx, ch, []byte("lost")); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Fatalf("Publish with Redis down: err=%v, want EUNAVAILABLE", err)
	}
	if err := b.Subscribe(ctx, clusterchat.UserChannel(43)); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Fatalf("Subscribe with Redis down: err=%v, want EUNAVAILABLE", err)
	}

	r.Start(t)
	testenv.WaitFor(t, 10*time.Second, "HandleReconnect", func() bool { return rec.Reconnects() == 1 })
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready after HandleReconnect: %v", err)
	}
	// Subscriptions are restored before HandleReconnect: a publish from
	// another client must arrive without waiting for anything else.
	other, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	n, err := other.Do(ctx, other.B().Publish().Channel("cc:"+ch.String()).Message("after").Build()).AsInt64()
	if err != nil || n != 1 {
		t.Fatalf("PUBLISH from another client reached %d subscribers (err %v), want 1", n, err)
	}
	rec.WaitCount(t, ch, 2)
	// The broker's own publisher reconnects too (rueidis redials on demand).
	testenv.WaitFor(t, 10*time.Second, "Publish to work again", func() bool {
		return b.Publish(ctx, ch, []byte("again")) == nil
	})
	rec.WaitCount(t, ch, 3)
	if got := rec.Messages(ch); got[0] != "before" || got[1] != "after" || got[2] != "again" {
		t.Fatalf("received %q", got)
	}
	// Still counted twice.
	if err := b.Unsubscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	n, err = other.Do(ctx, other.B().Publish().Channel("cc:"+ch.String()).Message("x").Build()).AsInt64()
	if err != nil || n != 1 {
		t.Fatalf("after one of two Unsubscribes: %d subscribers (err %v), want 1", n, err)
	}
}

// TestBrokerKilled is TestBrokerReconnect with a crash (SIGKILL) of Redis.
func TestBrokerKilled(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	rec := &brokertest.Recorder{}
	b := newBroker(t, r, rec)
	if err := b.Subscribe(ctx, clusterchat.GroupChannel(7)); err != nil {
		t.Fatal(err)
	}
	r.Kill(t)
	testenv.WaitFor(t, 10*time.Second, "broker to notice", func() bool { return b.Ready(ctx) != nil })
	r.Start(t)
	testenv.WaitFor(t, 10*time.Second, "HandleReconnect", func() bool { return rec.Reconnects() == 1 })
	testenv.WaitFor(t, 10*time.Second, "Publish to work again", func() bool {
		return b.Publish(ctx, clusterchat.GroupChannel(7), []byte("x")) == nil
	})
	rec.WaitCount(t, clusterchat.GroupChannel(7), 1)
}

// fastPresence makes heartbeats and expiry quick enough for tests.
var fastPresence = PresenceOptions{Heartbeat: 50 * time.Millisecond, TTL: time.Second, Timeout: 2 * time.Second}

func online(t *testing.T, p clusterchat.Presence, uid int64) bool {
	t.Helper()
	m, err := p.Online(context.Background(), []int64{uid})
	if err != nil {
		t.Fatal(err)
	}
	return m[uid]
}

// TestPresenceHeartbeat: sessions outlive many TTLs while the heartbeat runs.
func TestPresenceHeartbeat(t *testing.T) {
	r := testenv.StartRedis(t)
	p := newPresence(t, r, "a", fastPresence)
	if _, err := p.Acquire(context.Background(), 1, "s", 0); err != nil {
		t.Fatal(err)
	}
	// Count heartbeats through the expiry the server holds: it must move.
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{r.Addr()}, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	score := func() float64 {
		s, err := c.Do(context.Background(), c.B().Zscore().Key("cc:pres:1").Member("a/s").Build()).AsFloat64()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := score()
	testenv.WaitFor(t, 10*time.Second, "renewals past the first TTL", func() bool {
		if !online(t, p, 1) {
			t.Fatal("session lapsed while its heartbeat ran")
		}
		return score() > first+float64(fastPresence.TTL.Milliseconds())
	})
}

// TestPresenceNodeDeath: a server that stops heartbeating without Close
// (SIGKILL) shows its users offline after the TTL, on the other servers.
func TestPresenceNodeDeath(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	dead := newPresence(t, r, "dead", fastPresence)
	alive := newPresence(t, r, "alive", fastPresence)
	if _, err := dead.Acquire(ctx, 1, "s", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.Acquire(ctx, 2, "s", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := alive.Acquire(ctx, 2, "s", 0); err != nil {
		t.Fatal(err)
	}
	dead.abandon()
	testenv.WaitFor(t, 10*time.Second, "user 1 offline", func() bool { return !online(t, alive, 1) })
	if !online(t, alive, 2) {
		t.Fatal("user 2 has a session on the live server but shows offline")
	}
	// The lapsed session no longer counts against the limit.
	if first, err := alive.Acquire(ctx, 1, "s2", 1); err != nil || !first {
		t.Fatalf("Acquire after lapse: first=%v err=%v, want true, nil", first, err)
	}
}

// TestPresenceReap: when a server dies, a surviving one reaps its sessions
// and is told which users went offline (only those with no session left),
// exactly once; a server that closes cleanly is not reaped.
func TestPresenceReap(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	got := make(chan []int64, 10)
	alive := newPresence(t, r, "alive", fastPresence)
	alive.OnOffline(func(uids []int64) { got <- uids })
	other := newPresence(t, r, "other", fastPresence)
	other.OnOffline(func(uids []int64) { got <- uids })
	// The dead node never beats (it dies before its first heartbeat):
	// Acquire alone must have registered it.
	dead := newPresence(t, r, "dead", PresenceOptions{Heartbeat: time.Hour, TTL: time.Second, Timeout: 2 * time.Second})
	clean := newPresence(t, r, "clean", fastPresence)
	for _, uid := range []int64{1, 2} {
		if _, err := dead.Acquire(ctx, uid, "s", 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alive.Acquire(ctx, 2, "s", 0); err != nil { // 2 stays online
		t.Fatal(err)
	}
	if _, err := clean.Acquire(ctx, 3, "s", 0); err != nil {
		t.Fatal(err)
	}
	if err := clean.Close(); err != nil {
		t.Fatal(err)
	}
	dead.abandon()
	select {
	case uids := <-got:
		if len(uids) != 1 || uids[0] != 1 {
			t.Fatalf("reaped %v, want [1]", uids)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no survivor reported the dead node's users")
	}
	// Nobody reports it again (each dead node is reaped once), and the
	// cleanly closed node is never reaped.
	b := alive.beatsDone()
	testenv.WaitFor(t, 10*time.Second, "two more heartbeats", func() bool { return alive.beatsDone() > b+1 })
	select {
	case uids := <-got:
		t.Fatalf("reaped again: %v", uids)
	default:
	}
	if online(t, alive, 1) || !online(t, alive, 2) {
		t.Fatal("presence after the reap is wrong")
	}
}

// TestPresenceRedisRestart: Redis restarts empty; while it is down calls fail
// fast with EUNAVAILABLE, and the next heartbeat after it is back puts every
// session of this node back.
func TestPresenceRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	p := newPresence(t, r, "a", fastPresence)
	q := newPresence(t, r, "b", fastPresence)
	for uid := int64(1); uid <= 100; uid++ {
		if _, err := p.Acquire(ctx, uid, "s", 0); err != nil {
			t.Fatal(err)
		}
	}
	r.Stop(t)
	if _, err := p.Acquire(ctx, 500, "s", 0); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Fatalf("Acquire with Redis down: err=%v, want EUNAVAILABLE", err)
	}
	if _, err := q.Online(ctx, []int64{1}); clusterchat.ErrorCode(err) != clusterchat.EUNAVAILABLE {
		t.Fatalf("Online with Redis down: err=%v, want EUNAVAILABLE", err)
	}
	r.Start(t)
	testenv.WaitFor(t, 10*time.Second, "sessions back after restart", func() bool {
		m, err := q.Online(ctx, []int64{1, 50, 100})
		return err == nil && m[1] && m[50] && m[100]
	})
}

// TestPresenceReleaseDuringHeartbeat: a session released while a heartbeat
// is in flight must not be resurrected by it.
func TestPresenceReleaseDuringHeartbeat(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	// Back-to-back heartbeats, a TTL that cannot lapse during the test.
	p := newPresence(t, r, "a", PresenceOptions{Heartbeat: time.Millisecond, TTL: time.Minute})
	const users = 300
	uids := make([]int64, users)
	for i := range uids {
		uids[i] = int64(i + 1)
		if _, err := p.Acquire(ctx, uids[i], "s", 0); err != nil {
			t.Fatal(err)
		}
	}
	// Release them all at once, from several goroutines: many releases
	// land while a heartbeat that still lists them is in flight.
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := g; i < users; i += 10 {
				if _, err := p.Release(ctx, uids[i], "s"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	// Two beats after the last release: any resurrection has happened
	// (and, with the fix, been undone) by then.
	start := p.beatsDone()
	testenv.WaitFor(t, 10*time.Second, "two heartbeats", func() bool { return p.beatsDone()-start >= 2 })
	m, err := p.Online(ctx, uids)
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range uids {
		if m[uid] {
			t.Errorf("user %d released but online (resurrected by a heartbeat)", uid)
		}
	}
}

type nopHandler struct{}

func (nopHandler) HandleMessage(clusterchat.Channel, []byte) {}
func (nopHandler) HandleReconnect()                          {}

// BenchmarkPublishParallel measures publish throughput with many concurrent
// publishers sharing the pipeline (go test -bench . -cpu 2 with
// -benchtime; SetParallelism multiplies the goroutines per core).
func BenchmarkPublishParallel(b *testing.B) {
	r := testenv.StartRedis(b)
	br, err := NewBroker(context.Background(), r.URL(), nopHandler{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	payload := []byte(`{"type":"msg","from":1,"to":2,"body":"hello"}`)
	for _, par := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("goroutines=%dxGOMAXPROCS", par), func(b *testing.B) {
			b.SetParallelism(par)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := br.Publish(context.Background(), clusterchat.UserChannel(1), payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkPublishDeliver measures the whole trip: publish on one broker,
// delivered by the reader of a subscribed one.
func BenchmarkPublishDeliver(b *testing.B) {
	r := testenv.StartRedis(b)
	var got atomic.Int64
	sub, err := NewBroker(context.Background(), r.URL(), countHandler{&got}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Subscribe(context.Background(), clusterchat.UserChannel(1)); err != nil {
		b.Fatal(err)
	}
	pub, err := NewBroker(context.Background(), r.URL(), nopHandler{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	payload := []byte(`{"type":"msg","from":1,"to":2,"body":"hello"}`)
	b.SetParallelism(64)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := pub.Publish(context.Background(), clusterchat.UserChannel(1), payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	want := int64(b.N)
	testenv.WaitFor(b, 30*time.Second, "deliveries", func() bool { return got.Load() >= want })
}

type countHandler struct{ n *atomic.Int64 }

func (h countHandler) HandleMessage(clusterchat.Channel, []byte) { h.n.Add(1) }
func (h countHandler) HandleReconnect()                          {}

// TestLimiter runs the suite with two Limiters on one Redis, as two servers
// of a cluster share it.
func TestLimiter(t *testing.T) {
	r := testenv.StartRedis(t)
	limitertest.Run(t, func(t *testing.T) (clusterchat.Limiter, clusterchat.Limiter) {
		var ls [2]clusterchat.Limiter
		for i := range ls {
			l, err := NewLimiter(r.URL(), "", 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			ls[i] = l
		}
		return ls[0], ls[1]
	})
}
