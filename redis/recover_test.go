package redis

import (
	"slices"
	"sync"
	"testing"
	"time"

	"context"

	"clusterchat/internal/testenv"
)

// TestPresenceRecoversAfterOutage: Redis stalls (SIGSTOP) longer than the
// TTL, so every session lapses and, when it comes back, a survivor may reap
// the other server and tell its users' friends "offline" while they are
// still connected there. That server's next heartbeat must put them back
// and report them recovered (its Server then announces "online"), so the
// last word about each user is the truth.
func TestPresenceRecoversAfterOutage(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	var (
		mu  sync.Mutex
		log []string // "off 1", "on 1" in the order they were reported
	)
	record := func(what string) func([]int64) {
		return func(uids []int64) {
			mu.Lock()
			defer mu.Unlock()
			for _, uid := range uids {
				log = append(log, what+" "+string(rune('0'+uid)))
			}
		}
	}
	// The watcher beats fast, so after the stall it is likely the one to
	// reap; home holds user 1 and beats slower.
	watcher := newPresence(t, r, "watcher", fastPresence)
	watcher.OnOffline(record("off"))
	home := newPresence(t, r, "home", PresenceOptions{Heartbeat: 300 * time.Millisecond, TTL: time.Second, Timeout: time.Second})
	home.OnOffline(record("off"))
	home.OnRecovered(record("on"))
	if _, err := home.Acquire(ctx, 1, "s", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := home.Acquire(ctx, 2, "s", 0); err != nil {
		t.Fatal(err)
	}
	b := home.beatsDone()
	testenv.WaitFor(t, 10*time.Second, "two heartbeats", func() bool { return home.beatsDone() > b+1 })
	mu.Lock()
	if len(log) != 0 {
		t.Fatalf("reports before any outage: %v", log)
	}
	mu.Unlock()

	r.Pause(t)
	time.Sleep(2500 * time.Millisecond) // the outage itself: longer than TTL+Heartbeat
	r.Resume(t)
	// User 2 logs out while Redis is back: it must not come back "online".
	// The heartbeat may put it back and report it before the release (a
	// legitimate "on 2"); the release is the Server's offline announcement
	// ("rel 2"), which must come after any such report.
	last2, err := home.Release(ctx, 2, "s")
	if err != nil {
		t.Fatalf("Release after the outage: %v", err)
	}
	if last2 {
		record("rel")([]int64{2})
	}
	testenv.WaitFor(t, 10*time.Second, "user 1 reported back online", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(log, "on 1")
	})
	b = home.beatsDone()
	testenv.WaitFor(t, 10*time.Second, "three more heartbeats", func() bool { return home.beatsDone() > b+2 })
	mu.Lock()
	defer mu.Unlock()
	last := map[string]string{}
	for _, e := range log {
		last[e[len(e)-1:]] = e
	}
	if last["1"] != "on 1" {
		t.Fatalf("reports %v: the last word about user 1 is %q, want \"on 1\" (still connected)", log, last["1"])
	}
	if slices.Contains(log, "on 2") && last["2"] == "on 2" {
		t.Fatalf("reports %v: user 2 logged out but was reported online last", log)
	}
	if !online(t, watcher, 1) || online(t, watcher, 2) {
		t.Fatal("presence after the outage is not the truth")
	}
	t.Logf("reports across the outage: %v", log)
}
