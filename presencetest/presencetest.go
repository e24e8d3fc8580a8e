// Package presencetest is the conformance suite every clusterchat.Presence
// passes. Implementations call Run from their own tests.
package presencetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"clusterchat"
)

// NewFunc returns a new Presence for the server named node; calls with
// different nodes stand for different servers of one cluster. The suite
// closes what it gets.
type NewFunc func(t *testing.T, node string) clusterchat.Presence

// Option adjusts the suite to an implementation.
type Option func(*config)

type config struct{ singleProcess bool }

// SingleProcess says that Presences from separate NewFunc calls do not share
// a backend (inmem), so the multi-server tests are skipped.
func SingleProcess() Option { return func(c *config) { c.singleProcess = true } }

// Run runs the suite against Presences made by newPresence.
func Run(t *testing.T, newPresence NewFunc, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	multi := func(f func(*testing.T, NewFunc)) func(*testing.T) {
		return func(t *testing.T) {
			if cfg.singleProcess {
				t.Skip("single-process presence: no shared backend")
			}
			f(t, newPresence)
		}
	}
	t.Run("FirstLast", func(t *testing.T) { testFirstLast(t, newPresence) })
	t.Run("ReacquireSameSession", func(t *testing.T) { testReacquire(t, newPresence) })
	t.Run("Online", func(t *testing.T) { testOnline(t, newPresence) })
	t.Run("MaxRace", func(t *testing.T) { testMaxRace(t, newPresence, 1) })
	t.Run("MaxRaceTwoServers", multi(func(t *testing.T, f NewFunc) { testMaxRace(t, f, 2) }))
	t.Run("FirstLastTwoServers", multi(testFirstLastTwoServers))
	t.Run("CloseReleasesOwnSessions", multi(testCloseOwn))
}

// uidBase gives every test its own users, so tests sharing a backend (or a
// rerun against the same Redis) never see each other's sessions.
func uidBase() int64 { return rand.Int64N(1<<40) * 1000 }

func open(t *testing.T, f NewFunc, node string) clusterchat.Presence {
	p := f(t, node)
	t.Cleanup(func() { p.Close() })
	return p
}

func acquire(t *testing.T, p clusterchat.Presence, uid int64, sid string, max int, wantFirst bool) {
	t.Helper()
	first, err := p.Acquire(context.Background(), uid, sid, max)
	if err != nil {
		t.Fatalf("Acquire(%d, %s): %v", uid, sid, err)
	}
	if first != wantFirst {
		t.Fatalf("Acquire(%d, %s): first=%v, want %v", uid, sid, first, wantFirst)
	}
}

func release(t *testing.T, p clusterchat.Presence, uid int64, sid string, wantLast bool) {
	t.Helper()
	last, err := p.Release(context.Background(), uid, sid)
	if err != nil {
		t.Fatalf("Release(%d, %s): %v", uid, sid, err)
	}
	if last != wantLast {
		t.Fatalf("Release(%d, %s): last=%v, want %v", uid, sid, last, wantLast)
	}
}

func online(t *testing.T, p clusterchat.Presence, want map[int64]bool) {
	t.Helper()
	uids := make([]int64, 0, len(want))
	for uid := range want {
		uids = append(uids, uid)
	}
	got, err := p.Online(context.Background(), uids)
	if err != nil {
		t.Fatalf("Online: %v", err)
	}
	for uid, w := range want {
		if got[uid] != w {
			t.Fatalf("Online[%d]=%v, want %v (all: %v)", uid, got[uid], w, got)
		}
	}
}

func testFirstLast(t *testing.T, f NewFunc) {
	p := open(t, f, "n1")
	u := uidBase()
	online(t, p, map[int64]bool{u: false})
	acquire(t, p, u, "s1", 0, true)
	online(t, p, map[int64]bool{u: true})
	acquire(t, p, u, "s2", 0, false)
	release(t, p, u, "s1", false)
	online(t, p, map[int64]bool{u: true})
	release(t, p, u, "s2", true)
	online(t, p, map[int64]bool{u: false})
	release(t, p, u, "never", true) // unknown session: nothing left either way
	acquire(t, p, u, "s3", 0, true) // back online
}

func testReacquire(t *testing.T, f NewFunc) {
	p := open(t, f, "n1")
	u := uidBase()
	acquire(t, p, u, "s1", 1, true)
	acquire(t, p, u, "s1", 1, false) // the same session counts once against max
	release(t, p, u, "s1", true)
}

func testOnline(t *testing.T, f NewFunc) {
	p := open(t, f, "n1")
	u := uidBase()
	want := map[int64]bool{}
	for i := range int64(50) {
		if i%3 == 0 {
			acquire(t, p, u+i, "s", 0, true)
		}
		want[u+i] = i%3 == 0
	}
	online(t, p, want)
	got, err := p.Online(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("Online(nil) = %v, %v; want empty", got, err)
	}
}

// testMaxRace lets many goroutines, spread over servers, acquire sessions
// for one user at once: exactly max of them may win.
func testMaxRace(t *testing.T, f NewFunc, servers int) {
	ps := make([]clusterchat.Presence, servers)
	for i := range ps {
		ps[i] = open(t, f, fmt.Sprintf("n%d", i))
	}
	for _, max := range []int{1, 3} {
		t.Run(fmt.Sprintf("max=%d", max), func(t *testing.T) {
			u := uidBase()
			const tries = 40
			var (
				wg               sync.WaitGroup
				mu               sync.Mutex
				won, firsts      int
				refused, unknown []error
			)
			for i := range tries {
				wg.Go(func() {
					first, err := ps[i%servers].Acquire(context.Background(), u, fmt.Sprintf("s%d", i), max)
					mu.Lock()
					defer mu.Unlock()
					switch clusterchat.ErrorCode(err) {
					case 0:
						won++
						if first {
							firsts++
						}
					case clusterchat.ESESSIONS:
						refused = append(refused, err)
					default:
						unknown = append(unknown, err)
					}
				})
			}
			wg.Wait()
			if len(unknown) > 0 {
				t.Fatalf("unexpected errors: %v", unknown)
			}
			if won != max || firsts != 1 || len(refused) != tries-max {
				t.Fatalf("won %d (first %d), refused %d; want %d (first 1), %d", won, firsts, len(refused), max, tries-max)
			}
		})
	}
}

func testFirstLastTwoServers(t *testing.T, f NewFunc) {
	a, b := open(t, f, "a"), open(t, f, "b")
	u := uidBase()
	acquire(t, a, u, "s1", 0, true)
	acquire(t, b, u, "s2", 0, false)
	online(t, b, map[int64]bool{u: true})
	release(t, a, u, "s1", false)
	release(t, b, u, "s2", true)
	online(t, a, map[int64]bool{u: false})
}

func testCloseOwn(t *testing.T, f NewFunc) {
	a, b := f(t, "a"), open(t, f, "b")
	u := uidBase()
	both, onlyA, onlyB := u+1, u+2, u+3
	acquire(t, a, both, "sa", 0, true)
	acquire(t, b, both, "sb", 0, false)
	acquire(t, a, onlyA, "sa", 0, true)
	acquire(t, b, onlyB, "sb", 0, true)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	online(t, b, map[int64]bool{both: true, onlyA: false, onlyB: true})
	release(t, b, both, "sb", true)
}
