// Package limitertest is the conformance suite of clusterchat.Limiter, run
// by inmem and redis against their implementations.
package limitertest

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"clusterchat"
)

// Run runs the suite. open returns two Limiters sharing their counts (the
// same one twice for a single-process implementation, two clients of one
// Redis for a shared one); every key the suite uses is fresh.
func Run(t *testing.T, open func(t *testing.T) (a, b clusterchat.Limiter)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b clusterchat.Limiter, key func(string) string)
	}{
		{"CountsInWindow", testCounts},
		{"WindowEnds", testWindowEnds},
		{"Reset", testReset},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			prefix := t.Name() + "/" + strconv.FormatInt(time.Now().UnixNano(), 36) + "/"
			tc.fn(t, a, b, func(s string) string { return prefix + s })
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func hit(t *testing.T, l clusterchat.Limiter, key string, d time.Duration) (int64, time.Duration) {
	t.Helper()
	n, reset, err := l.Hit(ctx(t), key, d)
	if err != nil {
		t.Fatalf("Hit(%s): %v", key, err)
	}
	return n, reset
}

func count(t *testing.T, l clusterchat.Limiter, key string) int64 {
	t.Helper()
	n, _, err := l.Count(ctx(t), key)
	if err != nil {
		t.Fatalf("Count(%s): %v", key, err)
	}
	return n
}

// testCounts: hits on either side add up, per key; Count does not add.
func testCounts(t *testing.T, a, b clusterchat.Limiter, key func(string) string) {
	k, other := key("k"), key("other")
	if n := count(t, a, k); n != 0 {
		t.Fatalf("Count of a fresh key = %d", n)
	}
	for i := int64(1); i <= 5; i++ {
		l := a
		if i%2 == 0 {
			l = b
		}
		n, reset := hit(t, l, k, time.Hour)
		if n != i {
			t.Fatalf("hit %d: count %d", i, n)
		}
		if reset <= 0 || reset > time.Hour {
			t.Fatalf("hit %d: window ends in %v, want (0, 1h]", i, reset)
		}
	}
	if n := count(t, b, k); n != 5 {
		t.Errorf("Count = %d, want 5", n)
	}
	if n := count(t, a, k); n != 5 {
		t.Errorf("Count after Count = %d, want 5", n)
	}
	if n, _ := hit(t, b, other, time.Hour); n != 1 {
		t.Errorf("another key's first hit = %d, want 1", n)
	}
}

// testWindowEnds: a window does not slide with hits, and after it ends the
// count starts again at 1.
func testWindowEnds(t *testing.T, a, b clusterchat.Limiter, key func(string) string) {
	k := key("k")
	const d = 300 * time.Millisecond
	hit(t, a, k, d)
	start := time.Now()
	for time.Since(start) < d/2 {
		hit(t, b, k, d) // hits within the window do not extend it
	}
	deadline := time.Now().Add(10 * time.Second)
	for count(t, a, k) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the window never ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, _ := hit(t, b, k, d); n != 1 {
		t.Errorf("first hit of a new window = %d, want 1", n)
	}
}

func testReset(t *testing.T, a, b clusterchat.Limiter, key func(string) string) {
	k := key("k")
	hit(t, a, k, time.Hour)
	hit(t, a, k, time.Hour)
	if err := b.Reset(ctx(t), k); err != nil {
		t.Fatal(err)
	}
	if n := count(t, a, k); n != 0 {
		t.Errorf("Count after Reset = %d", n)
	}
	if n, _ := hit(t, a, k, time.Hour); n != 1 {
		t.Errorf("hit after Reset = %d, want 1", n)
	}
	if err := a.Reset(ctx(t), key("never")); err != nil {
		t.Errorf("Reset of an unknown key: %v", err)
	}
}

// testConcurrent: no hit is lost when both sides hit at once.
func testConcurrent(t *testing.T, a, b clusterchat.Limiter, key func(string) string) {
	k := key("k")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for i := range workers {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, _, err := l.Hit(context.Background(), k, time.Hour); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := count(t, a, k); n != workers*each {
		t.Errorf("Count after %d concurrent hits = %d", workers*each, n)
	}
}
