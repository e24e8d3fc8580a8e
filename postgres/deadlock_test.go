package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/postgres"
)

// syncBuffer is a log sink safe for the pool's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestAppendAndMarksDoNotDeadlock: appends (which move their senders' read
// cursors) and cursor marks (a server's coalescer, another server's, a
// reader's MarkRead) on the same cursor rows at once never deadlock.
// PostgreSQL would detect a deadlock after deadlock_timeout (1 s) and the
// store would retry: nothing lost, but every message of the committer held
// for a second. The store logs each retry (at debug), so the test reads its
// log for any "deadlock".
func TestAppendAndMarksDoNotDeadlock(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	logs := &syncBuffer{}
	open := func() *postgres.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := postgres.Open(ctx, dsn, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	stores := []*postgres.Store{open(), open()} // two servers
	c := context.Background()
	const users = 12
	ids := make([]int64, users)
	for i := range ids {
		var err error
		if ids[i], err = stores[0].CreateUser(c, fmt.Sprintf("u%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	// Every pair talks once, so every 1:1 conversation has its two cursor
	// rows.
	type pair struct{ a, b int64 }
	var pairs []pair
	var first []*clusterchat.Message
	for i := range ids {
		for j := i + 1; j < users; j++ {
			pairs = append(pairs, pair{ids[i], ids[j]})
			first = append(first, &clusterchat.Message{Conv: clusterchat.DirectConv(ids[i], ids[j]), From: ids[i], To: ids[j], Body: "hi"})
		}
	}
	if err := stores[0].Append(c, first); err != nil {
		t.Fatal(err)
	}

	const rounds = 150
	var wg sync.WaitGroup
	errs := make(chan error, 8*rounds)
	for w := range 4 { // appenders: batches over many senders and conversations
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range rounds {
				batch := make([]*clusterchat.Message, 16)
				for k := range batch {
					p := pairs[r.IntN(len(pairs))]
					if r.IntN(2) == 0 {
						p.a, p.b = p.b, p.a
					}
					batch[k] = &clusterchat.Message{Conv: clusterchat.DirectConv(p.a, p.b), From: p.a, To: p.b, Body: "m"}
				}
				if err := stores[w%2].Append(c, batch); err != nil {
					errs <- err
				}
			}
		})
	}
	for w := range 3 { // coalescers and readers: every cursor row, shuffled
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for i := range rounds {
				moves := make([]clusterchat.Cursor, 0, 2*len(pairs))
				for _, p := range pairs {
					conv := clusterchat.DirectConv(p.a, p.b)
					seq := int64(i + 1)
					moves = append(moves, clusterchat.Cursor{User: p.a, Conv: conv, Seq: seq}, clusterchat.Cursor{User: p.b, Conv: conv, Seq: seq})
				}
				r.Shuffle(len(moves), func(x, y int) { moves[x], moves[y] = moves[y], moves[x] })
				var err error
				if w == 2 {
					err = stores[w%2].MarkRead(c, moves)
				} else {
					err = stores[w%2].MarkDelivered(c, moves)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("store call failed: %v", err)
	}
	if n := strings.Count(logs.String(), "deadlock"); n > 0 {
		t.Errorf("%d deadlocks were retried; log:\n%s", n, logs.String())
	}
}
