package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

const waitTime = 20 * time.Second

// testServer is a real chatserver (package server, in this process; see
// internal/wiretest) on loopback with an embedded SQLite store that
// outlives restarts of the server (Stop, Start).
type testServer struct {
	*wiretest.Server
	addr string
}

func startServer(t *testing.T) *testServer {
	t.Helper()
	return startServerWith(t, nil)
}

// startServerWith is startServer with changes to the configuration (rate
// limits are off unless edit turns them on).
func startServerWith(t *testing.T, edit func(*server.Config)) *testServer {
	t.Helper()
	w := wiretest.StartServer(t, edit)
	return &testServer{Server: w, addr: w.TCP}
}

// stop and start stop the server and start it again on the same address
// and store (wiretest.Server's Stop and Start).
func (ts *testServer) stop()  { ts.Stop() }
func (ts *testServer) start() { ts.Start() }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a Client and collects its events.
func dial(t *testing.T, addr string, opts Options) (*Client, *collector) {
	t.Helper()
	c, err := Dial(ctxT(t), addr, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	col := &collector{}
	col.done = make(chan struct{})
	go func() {
		defer close(col.done)
		for e := range c.Events() {
			col.mu.Lock()
			col.events = append(col.events, e)
			col.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-col.done })
	return c, col
}

// user registers name and returns a logged-in Client for it.
func user(t *testing.T, addr, name string, opts Options) (*Client, *collector, int64) {
	t.Helper()
	c, col := dial(t, addr, opts)
	id, err := c.Register(ctxT(t), name, "pw-"+name)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if _, err := c.Login(ctxT(t), id, "pw-"+name); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return c, col, id
}

type collector struct {
	mu     sync.Mutex
	events []Event
	done   chan struct{}
}

// messages returns the messages of conv in emission order.
func (col *collector) messages(conv string) []*clusterchat.Message {
	col.mu.Lock()
	defer col.mu.Unlock()
	var out []*clusterchat.Message
	for _, e := range col.events {
		if e.Kind == EventMessage && e.Message.Conv == conv {
			out = append(out, e.Message)
		}
	}
	return out
}

func (col *collector) has(match func(Event) bool) bool {
	col.mu.Lock()
	defer col.mu.Unlock()
	return slices.ContainsFunc(col.events, match)
}

// waitLog waits until conv holds n messages, then checks they are seqs
// 1..n, each once, in order, and returns them.
func waitLog(t *testing.T, col *collector, conv string, n int) []*clusterchat.Message {
	t.Helper()
	testenv.WaitFor(t, waitTime, conv+" messages", func() bool { return len(col.messages(conv)) >= n })
	msgs := col.messages(conv)
	if len(msgs) != n {
		t.Fatalf("%s: %d messages, want %d", conv, len(msgs), n)
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("%s: message %d has seq %d: want 1..%d in order", conv, i, m.Seq, n)
		}
	}
	return msgs
}
