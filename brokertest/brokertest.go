// Package brokertest is the conformance suite every clusterchat.Broker
// passes: the guarantees written on the interface, checked against the real
// implementation. Implementations call Run from their own tests.
package brokertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
)

// NewFunc returns a new broker delivering to h; each call stands for one
// server of a cluster. The broker is closed by the suite, and may be closed
// again by the caller's cleanup.
type NewFunc func(t *testing.T, h clusterchat.BrokerHandler) clusterchat.Broker

// Option adjusts the suite to an implementation.
type Option func(*config)

type config struct{ singleProcess bool }

// SingleProcess says that brokers from separate NewFunc calls do not share a
// backend (inmem), so the cross-server tests are skipped.
func SingleProcess() Option { return func(c *config) { c.singleProcess = true } }

// wait bounds every poll: generous, because it only matters when a test
// fails, and -race on a loaded 2-core box is slow.
const wait = 10 * time.Second

// Run runs the suite against brokers made by newBroker.
func Run(t *testing.T, newBroker NewFunc, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	t.Run("PublishOrder", func(t *testing.T) { testPublishOrder(t, newBroker) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrentPublishers(t, newBroker) })
	t.Run("Counted", func(t *testing.T) { testCounted(t, newBroker) })
	t.Run("NotSubscribed", func(t *testing.T) { testNotSubscribed(t, newBroker) })
	t.Run("CloseWaits", func(t *testing.T) { testCloseWaits(t, newBroker) })
	t.Run("AfterClose", func(t *testing.T) { testAfterClose(t, newBroker) })
	t.Run("CrossServer", func(t *testing.T) {
		if cfg.singleProcess {
			t.Skip("single-process broker: no shared backend")
		}
		testCrossServer(t, newBroker)
	})
}

// Recorder is a BrokerHandler that keeps copies of what it receives.
type Recorder struct {
	mu         sync.Mutex
	msgs       map[clusterchat.Channel][]string
	reconnects int
	// OnMessage, when set, is called at the start of every HandleMessage.
	OnMessage func(channel clusterchat.Channel, payload []byte)
}

var _ clusterchat.BrokerHandler = (*Recorder)(nil)

// HandleMessage records a copy of payload (the broker may reuse it).
func (r *Recorder) HandleMessage(channel clusterchat.Channel, payload []byte) {
	if r.OnMessage != nil {
		r.OnMessage(channel, payload)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = make(map[clusterchat.Channel][]string)
	}
	r.msgs[channel] = append(r.msgs[channel], string(payload))
}

// HandleReconnect counts reconnects.
func (r *Recorder) HandleReconnect() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconnects++
}

// Messages returns a copy of what channel received so far.
func (r *Recorder) Messages(channel clusterchat.Channel) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs[channel]...)
}

// Count is how many payloads channel received so far.
func (r *Recorder) Count(channel clusterchat.Channel) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[channel])
}

// Reconnects is how many times HandleReconnect was called.
func (r *Recorder) Reconnects() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// WaitCount waits until channel received at least n payloads.
func (r *Recorder) WaitCount(t testing.TB, channel clusterchat.Channel, n int) {
	t.Helper()
	testenv.WaitFor(t, wait, fmt.Sprintf("%d payloads on %s", n, channel), func() bool { return r.Count(channel) >= n })
}

// channelName returns a user's (kind "u") or a group's (kind "g") channel
// no other test (or earlier run against the same backend) uses.
func channelName(kind string) clusterchat.Channel {
	return clusterchat.Channel{Group: kind == "g", ID: rand.Int64N(1 << 62)}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func newRecorded(t *testing.T, newBroker NewFunc) (clusterchat.Broker, *Recorder) {
	rec := &Recorder{}
	b := newBroker(t, rec)
	t.Cleanup(func() { b.Close() })
	return b, rec
}

func testPublishOrder(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	b, rec := newRecorded(t, newBroker)
	must(t, b.Ready(ctx))
	ch := channelName("u")
	must(t, b.Subscribe(ctx, ch))
	const n = 1000
	buf := make([]byte, 0, 16)
	for i := range n {
		// One buffer for every payload: the broker may not keep it.
		buf = strconv.AppendInt(buf[:0], int64(i), 10)
		must(t, b.Publish(ctx, ch, buf))
		clear(buf[:cap(buf)])
	}
	rec.WaitCount(t, ch, n)
	got := rec.Messages(ch)
	if len(got) != n {
		t.Fatalf("got %d payloads, want %d", len(got), n)
	}
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Fatalf("payload %d is %q, want %q", i, p, strconv.Itoa(i))
		}
	}
}

func testConcurrentPublishers(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	b, rec := newRecorded(t, newBroker)
	ch := channelName("g")
	must(t, b.Subscribe(ctx, ch))
	const publishers, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				if err := b.Publish(ctx, ch, fmt.Appendf(nil, "%d/%d", p, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rec.WaitCount(t, ch, publishers*each)
	next := make([]int, publishers) // per publisher order
	for _, m := range rec.Messages(ch) {
		var p, i int
		if _, err := fmt.Sscanf(m, "%d/%d", &p, &i); err != nil {
			t.Fatalf("bad payload %q", m)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: got %d, want %d (out of order or duplicated)", p, i, next[p])
		}
		next[p]++
	}
}

// marker publishes on a channel that stays subscribed and waits for it: since
// payloads from one publisher arrive in order, everything published before
// the marker has arrived (or never will) once the marker has.
func marker(t *testing.T, b clusterchat.Broker, rec *Recorder, ch clusterchat.Channel) {
	t.Helper()
	n := rec.Count(ch)
	must(t, b.Publish(context.Background(), ch, []byte("marker")))
	rec.WaitCount(t, ch, n+1)
}

func testCounted(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	b, rec := newRecorded(t, newBroker)
	ch, mark := channelName("u"), channelName("m")
	must(t, b.Subscribe(ctx, mark))

	tests := []struct {
		op       string
		wantRecv bool
	}{
		{"sub", true},
		{"sub", true},
		{"unsub", true}, // one left
		{"unsub", false},
		{"sub", true}, // subscribable again after the last unsubscribe
		{"unsub", false},
	}
	for i, tt := range tests {
		switch tt.op {
		case "sub":
			must(t, b.Subscribe(ctx, ch))
		case "unsub":
			must(t, b.Unsubscribe(ctx, ch))
		}
		before := rec.Count(ch)
		must(t, b.Publish(ctx, ch, []byte("x")))
		marker(t, b, rec, mark)
		if got := rec.Count(ch) > before; got != tt.wantRecv {
			t.Fatalf("step %d (%s): received=%v, want %v", i, tt.op, got, tt.wantRecv)
		}
	}
}

func testNotSubscribed(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	b, rec := newRecorded(t, newBroker)
	ch, mark := channelName("u"), channelName("m")
	must(t, b.Subscribe(ctx, mark))
	must(t, b.Publish(ctx, ch, []byte("nobody")))
	marker(t, b, rec, mark)
	if n := rec.Count(ch); n != 0 {
		t.Fatalf("unsubscribed channel received %d payloads", n)
	}
}

func testCloseWaits(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	var once sync.Once
	rec := &Recorder{OnMessage: func(clusterchat.Channel, []byte) {
		once.Do(func() {
			close(entered)
			<-release
			finished.Store(true)
		})
	}}
	b := newBroker(t, rec)
	ch := channelName("u")
	must(t, b.Subscribe(ctx, ch))
	// In another goroutine: an in-process broker runs the handler in Publish.
	go b.Publish(ctx, ch, []byte("slow"))
	<-entered
	closed := make(chan bool)
	go func() {
		b.Close()
		closed <- finished.Load()
	}()
	close(release)
	if !<-closed {
		t.Fatal("Close returned while a handler call was in progress")
	}
}

func testAfterClose(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	b := newBroker(t, &Recorder{})
	must(t, b.Close())
	if err := b.Publish(ctx, clusterchat.UserChannel(1), []byte("x")); err == nil {
		t.Error("Publish after Close succeeded")
	}
	if err := b.Ready(ctx); err == nil {
		t.Error("Ready after Close reported ready")
	}
	must(t, b.Close()) // idempotent
}

func testCrossServer(t *testing.T, newBroker NewFunc) {
	ctx := context.Background()
	b1, rec1 := newRecorded(t, newBroker)
	b2, rec2 := newRecorded(t, newBroker)
	ch, mark := channelName("u"), channelName("m")
	must(t, b2.Subscribe(ctx, ch))
	must(t, b1.Subscribe(ctx, mark))

	const n = 200
	for i := range n {
		must(t, b1.Publish(ctx, ch, []byte(strconv.Itoa(i))))
	}
	rec2.WaitCount(t, ch, n)
	for i, p := range rec2.Messages(ch) {
		if p != strconv.Itoa(i) {
			t.Fatalf("server 2: payload %d is %q", i, p)
		}
	}
	marker(t, b1, rec1, mark)
	if c := rec1.Count(ch); c != 0 {
		t.Fatalf("server 1 is not subscribed to %s but received %d payloads", ch, c)
	}

	// Both subscribed: both receive, whoever publishes.
	must(t, b1.Subscribe(ctx, ch))
	must(t, b2.Publish(ctx, ch, []byte("both")))
	rec1.WaitCount(t, ch, 1)
	rec2.WaitCount(t, ch, n+1)

	// Server 2 leaves: server 1 still receives, server 2 no longer does.
	must(t, b2.Unsubscribe(ctx, ch))
	must(t, b1.Publish(ctx, ch, []byte("one")))
	rec1.WaitCount(t, ch, 2)
	must(t, b2.Subscribe(ctx, mark))
	marker(t, b1, rec2, mark)
	if c := rec2.Count(ch); c != n+1 {
		t.Fatalf("server 2 received %d payloads after unsubscribing, want %d", c, n+1)
	}
}
