package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// presenceBound is how soon the users of a killed server must show offline
// (the figure; Redis presence expires them after TTL + heartbeat).
const presenceBound = 15 * time.Second

// testKillServer SIGKILLs n3 with users on it and restarts it at the end.
func testKillServer(t *testing.T, c *cluster) {
	s := c.servers
	victim := s[2]
	watcher := c.newUser(t, s[0].Addr())
	x, k, z := c.newUser(t, s[0].Addr()), c.newUser(t, s[0].Addr()), c.newUser(t, s[0].Addr())
	wn := nativeAt(t, s[0].Addr(), watcher, client.Options{})
	befriend(t, s[0].Addr(), wn, x, k, z)
	// x: a Go client on n3 that reconnects, first to n3 (dead), then through
	// nginx. The backoff leaves a window in which messages are missed.
	xn := nativeAt(t, victim.Addr(), x, client.Options{
		Reconnect: true, Addrs: []string{c.nginx.StreamAddr()},
		MinBackoff: 500 * time.Millisecond, MaxBackoff: time.Second,
	})
	// k: a classic client on n3; z: a Go client on n3 that does not reconnect.
	kr, _ := classicAt(t, victim.Addr(), k)
	nativeAt(t, victim.Addr(), z, client.Options{})
	// p and q chat between n1 and n2 throughout.
	p, q := c.newUser(t, s[0].Addr()), c.newUser(t, s[1].Addr())
	pn, qn := nativeAt(t, s[0].Addr(), p, client.Options{}), nativeAt(t, s[1].Addr(), q, client.Options{})
	for _, id := range []int64{x.id, k.id, z.id} {
		wn.waitEvent(t, fmt.Sprintf("%d online", id), func(e client.Event) bool {
			return e.Kind == client.EventPresence && e.UserID == id && e.State == "online"
		})
	}

	victim.Kill(t)
	killed := time.Now()
	t.Cleanup(func() {
		if !victim.Running() {
			victim.Restart(t)
		}
	})

	// Messages for x and k while they have no server.
	if _, err := wn.Send(ctx(t), x.id, "missed while n3 was dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := wn.Send(ctx(t), k.id, "classic missed while n3 was dead"); err != nil {
		t.Fatal(err)
	}
	// The others keep chatting.
	for i := range 3 {
		if _, err := pn.Send(ctx(t), q.id, fmt.Sprint("p->q after kill ", i)); err != nil {
			t.Fatal(err)
		}
		qn.waitMessage(t, p.id, fmt.Sprint("p->q after kill ", i))
		if _, err := qn.Send(ctx(t), p.id, fmt.Sprint("q->p after kill ", i)); err != nil {
			t.Fatal(err)
		}
		pn.waitMessage(t, q.id, fmt.Sprint("q->p after kill ", i))
	}

	// x reconnects through nginx to a live server and gets what it missed,
	// once; then live messages reach it there.
	xn.waitEvent(t, "x reconnected", func(e client.Event) bool { return e.Kind == client.EventReconnected })
	xn.waitMessage(t, watcher.id, "missed while n3 was dead")
	if _, err := wn.Send(ctx(t), x.id, "after x reconnected"); err != nil {
		t.Fatal(err)
	}
	xn.waitMessage(t, watcher.id, "after x reconnected")
	checkSeqs(t, xn.messages(clusterchat.DirectConv(watcher.id, x.id)), 2)

	// k and z (gone with n3, not back) show offline to a login elsewhere
	// within the bound.
	var states [2]string
	testenv.WaitFor(t, presenceBound-time.Since(killed), "users of the killed server offline in a login reply", func() bool {
		r, reply := classicAt(t, s[1].Addr(), watcher)
		defer r.Close()
		states = [2]string{friendState(t, reply, k.id), friendState(t, reply, z.id)}
		return states == [2]string{"offline", "offline"}
	})
	t.Logf("users of the killed server showed offline %v after SIGKILL", time.Since(killed).Round(100*time.Millisecond))
	// Their friend, online on n1 the whole time, is also told live: a
	// surviving server reaps the dead one's sessions and announces them.
	for _, id := range []int64{k.id, z.id} {
		wn.waitEvent(t, fmt.Sprintf("%d offline event", id), func(e client.Event) bool {
			return e.Kind == client.EventPresence && e.UserID == id && e.State == "offline"
		})
	}
	t.Logf("offline events for the killed server's users arrived %v after SIGKILL", time.Since(killed).Round(100*time.Millisecond))

	// k's connection died with n3; it connects again through nginx (which
	// may first pick the dead upstream: retry) and finds its message.
	kr.Close()
	var reply wiretest.Obj
	testenv.WaitFor(t, readTimeout, "classic login through nginx", func() bool {
		r := dialRaw(t, c.nginx.StreamAddr())
		defer r.Close()
		if r.TrySend(fmt.Sprintf(`{"msgid":1,"id":%d,"password":%q}`, k.id, k.pw)+"\x00") != nil {
			return false
		}
		o, err := r.ReadObj(5 * time.Second)
		if err != nil || o.Int("errno") != 0 {
			return false
		}
		reply = o
		return true
	})
	if got := offlineBodies(t, reply); !slices.Equal(got, []string{"classic missed while n3 was dead"}) {
		t.Fatalf("k's offlinemsg after the crash: %q", got)
	}

	victim.Restart(t)
	waitReady(t, victim, readTimeout)
}

// sendLoop is one sender of background traffic: it sends numbered messages
// to one recipient until stopped and remembers what was acknowledged.
type sendLoop struct {
	from  *native
	to    user
	mu    sync.Mutex
	acked []string
	err   error
}

func (l *sendLoop) run(tb testing.TB, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		txt := fmt.Sprintf("%d->%d #%d", l.from.u.id, l.to.id, i)
		// The client retries (same cmid) through the outage; a minute is
		// far beyond any wait a passing run sees.
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := l.from.Send(c, l.to.id, txt)
		cancel()
		l.mu.Lock()
		if err != nil {
			l.err = err
			l.mu.Unlock()
			return
		}
		l.acked = append(l.acked, txt)
		l.mu.Unlock()
	}
}

func (l *sendLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// classicSink reads a classic connection in the background and keeps the
// texts of the chat messages it receives.
type classicSink struct {
	r    *wiretest.Conn
	mu   sync.Mutex
	got  []string
	done chan struct{}
}

func newClassicSink(r *wiretest.Conn) *classicSink {
	k := &classicSink{r: r, done: make(chan struct{})}
	go func() {
		defer close(k.done)
		for {
			o, err := r.ReadObj(time.Hour)
			if err != nil {
				return
			}
			if o.Int("msgid") == 6 {
				k.mu.Lock()
				k.got = append(k.got, o.Str("msg"))
				k.mu.Unlock()
			}
		}
	}()
	return k
}

// testRedisRestart restarts Redis (losing every key and subscription) in the
// middle of traffic: servers must get ready again by themselves, and every
// acknowledged message must reach its recipient by its next login.
//
// Known failure (server bug, see the e2e report): a classic session that
// misses seq N because its publish failed during the outage and then gets
// N+1 live has its delivered cursor (a high-water mark, server/cursors.go)
// raised past N, so N never comes in offlinemsg: the classic part fails.
func testRedisRestart(t *testing.T, c *cluster) {
	s := c.servers
	var loops []*sendLoop
	var nativeRcpts []*native
	var sinks []*classicSink
	var sinkUsers []user
	for i := range 3 {
		from, to := s[i].Addr(), s[(i+1)%3].Addr()
		// A native recipient and a classic one per server pair.
		us, un, uc := c.newUser(t, from), c.newUser(t, to), c.newUser(t, to)
		sn := nativeAt(t, from, us, client.Options{})
		rn := nativeAt(t, to, un, client.Options{})
		rc, _ := classicAt(t, to, uc)
		nativeRcpts = append(nativeRcpts, rn)
		sinks = append(sinks, newClassicSink(rc))
		sinkUsers = append(sinkUsers, uc)
		loops = append(loops, &sendLoop{from: sn, to: un}, &sendLoop{from: sn, to: uc})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Add(1)
		go l.run(t, stop, &wg)
	}
	stopped := false
	stopTraffic := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopTraffic()
	waitAcks := func(what string, n int) {
		t.Helper()
		base := make([]int, len(loops))
		for i, l := range loops {
			base[i] = l.count()
		}
		testenv.WaitFor(t, 60*time.Second, what, func() bool {
			for i, l := range loops {
				if l.count() < base[i]+n {
					return false
				}
			}
			return true
		})
	}
	waitAcks("traffic before the restart", 5)

	c.redis.Kill(t)
	for _, sv := range s {
		testenv.WaitFor(t, readTimeout, "/readyz not 200 while Redis is down on "+sv.HTTPAddr(), func() bool {
			_, code, err := httpGet(sv.HTTPAddr(), "/readyz")
			return err == nil && code != http.StatusOK
		})
	}
	c.redis.Start(t)
	restarted := time.Now()
	for _, sv := range s {
		waitReady(t, sv, 60*time.Second)
	}
	t.Logf("all servers ready %v after Redis came back", time.Since(restarted).Round(100*time.Millisecond))
	// Ready means usable: each server takes a login again by itself. A
	// refusal with errno 9 (unavailable, retry) is allowed meanwhile.
	probe := c.newUser(t, s[0].Addr())
	for _, sv := range s {
		refused := 0
		testenv.WaitFor(t, readTimeout, "a login on "+sv.Addr()+" after the Redis restart", func() bool {
			r := dialRaw(t, sv.Addr())
			defer r.Close()
			r.Sendf(`{"msgid":1,"id":%d,"password":%q}`, probe.id, probe.pw)
			o := r.Expect(2)
			switch o.Int("errno") {
			case 0:
				return true
			case clusterchat.EUNAVAILABLE:
				refused++
				return false
			}
			t.Fatalf("login after the Redis restart: %s", o.Raw)
			return false
		})
		if refused > 0 {
			t.Logf("%s: %d login(s) refused with errno 9 after /readyz said 200", sv.Addr(), refused)
		}
	}
	waitAcks("traffic after the restart", 5)
	stopTraffic()
	for _, l := range loops {
		if l.err != nil {
			t.Fatalf("sender %d -> %d: %v", l.from.u.id, l.to.id, l.err)
		}
	}

	// Native recipients: after a SYNC of every conversation each acked
	// message is there, once, in order.
	for i, rn := range nativeRcpts {
		l := loops[2*i]
		if err := rn.Sync(ctx(t)); err != nil {
			t.Fatalf("sync: %v", err)
		}
		conv := clusterchat.DirectConv(l.from.u.id, l.to.id)
		testenv.WaitFor(t, readTimeout, "every acked message emitted", func() bool { return len(rn.messages(conv)) >= len(l.acked) })
		msgs := rn.messages(conv)
		checkSeqs(t, msgs, len(l.acked))
		for j, m := range msgs {
			if m.Body != l.acked[j] {
				t.Fatalf("native recipient %d: message %d is %q, acked %q", rn.u.id, j, m.Body, l.acked[j])
			}
		}
	}

	// Classic recipients: what arrived live plus the offlinemsg of the next
	// login (on another server) is every acked message, each once.
	for i, k := range sinks {
		l := loops[2*i+1]
		k.r.Close()
		<-k.done
		// One login, on another server: whatever did not arrive live must
		// be in its offlinemsg.
		r, reply := classicAt(t, s[(i+2)%3].Addr(), sinkUsers[i])
		r.Close()
		got := append(slices.Clone(k.got), offlineBodies(t, reply)...)
		counts := map[string]int{}
		for _, b := range got {
			counts[b]++
		}
		var missing, dup []string
		for _, a := range l.acked {
			if counts[a] == 0 {
				missing = append(missing, a)
			} else if counts[a] > 1 {
				dup = append(dup, a)
			}
		}
		if len(dup) > 0 {
			// The old session's delivered cursor is saved once a second, so
			// a login right after it may repeat a few: logged, not failed.
			t.Logf("classic recipient %d: %d messages came both live and in offlinemsg", sinkUsers[i].id, len(dup))
		}
		if len(missing) > 0 {
			t.Errorf("classic recipient %d: %d acked, %d live, %d offline; missing %q; duplicated %q",
				sinkUsers[i].id, len(l.acked), len(k.got), len(got)-len(k.got), missing, dup)
		}
	}
}
