package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/client"
	"clusterchat/internal/testenv"
)

// The no-loss fault tests (design.md "Delivery"): many users send 1:1 and
// group messages through the Go client, some of them from two devices,
// while servers crash, Redis restarts, a server rolls with SIGTERM and a
// proxy resets client connections at random. Afterwards every device of
// every member must hold every message of each of its conversations exactly
// once, in seq order, and every acknowledged message must be in the store
// as acknowledged.

const (
	// nlSendDeadline bounds one Send with all its retries: a Send that has
	// no ack by then is "unknown" (it may or may not be stored), not
	// accepted.
	nlSendDeadline = 30 * time.Second
	// nlPace is the pause between one user's sends: a few messages a
	// second per user keeps two cores (with three race-built servers)
	// responsive.
	nlPace = 150 * time.Millisecond
	// nlCatchUp bounds the catching up after the traffic stopped.
	nlCatchUp = 60 * time.Second
)

// nlConfig is the shape of one no-loss run.
type nlConfig struct {
	users      int   // users, each with a sender
	twoDevices int   // the first twoDevices users log in on two devices
	groups     int   // groups; every user is in one or two
	peers      []int // user i chats 1:1 with users i+off (mod users) for each off
}

// nlWorld is the population of a run: users, their devices, conversations.
type nlWorld struct {
	users   []user
	devices [][]*native      // per user
	groups  []int64          // group ids
	members map[string][]int // conv -> user indexes
	convsOf [][]string       // per user, its conversations
	targets [][]nlTarget     // per user, where its sender sends
	ledger  nlLedger         // every send and its outcome
}

// nlTarget is a conversation a user sends into.
type nlTarget struct {
	conv string
	to   int64 // 1:1 peer
	gid  int64 // group
}

// nlAck is one accepted message: what the sender's ack said it became.
type nlAck struct {
	conv string
	seq  int64
	mid  int64
	from int64
	body string
}

// nlLedger records every send.
type nlLedger struct {
	mu       sync.Mutex
	sent     int
	accepted []nlAck
	dupAcks  int            // acks answering a resend (the cmid was stored before)
	unknown  map[string]int // failed sends by error text
}

func (l *nlLedger) record(a *nlAck, dup bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent++
	if err != nil {
		if l.unknown == nil {
			l.unknown = map[string]int{}
		}
		msg := err.Error()
		if len(msg) > 80 {
			msg = msg[:80]
		}
		l.unknown[msg]++
		return
	}
	l.accepted = append(l.accepted, *a)
	if dup {
		l.dupAcks++
	}
}

// send sends one message from user ui on a device chosen by rng and records
// the outcome; ctx ends the send early only when the test is aborting.
func (w *nlWorld) send(ctx context.Context, rng *rand.Rand, ui int, tg nlTarget, body string) error {
	devs := w.devices[ui]
	d := devs[rng.IntN(len(devs))]
	sctx, cancel := context.WithTimeout(ctx, nlSendDeadline)
	defer cancel()
	var ack *client.Ack
	var err error
	if tg.gid != 0 {
		ack, err = d.SendGroup(sctx, tg.gid, body)
	} else {
		ack, err = d.Send(sctx, tg.to, body)
	}
	if err != nil {
		w.ledger.record(nil, false, err)
		return err
	}
	w.ledger.record(&nlAck{conv: ack.Conv, seq: ack.Seq, mid: ack.MID, from: w.users[ui].id, body: body}, ack.Dup, nil)
	return nil
}

// newNLWorld registers the users (over a classic connection to regAddr),
// logs their devices in through entry with reconnecting Go clients, makes
// the groups, and sends one message into every conversation, waiting until
// every member device has it: a device learns of a conversation from its
// login reply or a live message, so from then on every device knows all of
// its conversations and a final Sync covers them.
func newNLWorld(t *testing.T, c *cluster, regAddr, entry string, cfg nlConfig) *nlWorld {
	t.Helper()
	w := &nlWorld{members: map[string][]int{}, convsOf: make([][]string, cfg.users), targets: make([][]nlTarget, cfg.users)}
	opts := client.Options{
		Reconnect:      true,
		RequestTimeout: 5 * time.Second,
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     time.Second,
	}
	for i := range cfg.users {
		u := c.newUser(t, regAddr)
		w.users = append(w.users, u)
		n := 1
		if i < cfg.twoDevices {
			n = 2
		}
		var devs []*native
		for range n {
			devs = append(devs, nativeAt(t, entry, u, opts))
		}
		w.devices = append(w.devices, devs)
	}
	addConv := func(conv string, members []int) {
		w.members[conv] = members
		for _, m := range members {
			w.convsOf[m] = append(w.convsOf[m], conv)
		}
	}
	// 1:1: each user talks to a few peers (deduplicated pairs).
	for i := range cfg.users {
		for _, off := range cfg.peers {
			j := (i + off) % cfg.users
			conv := clusterchat.DirectConv(w.users[i].id, w.users[j].id)
			if _, ok := w.members[conv]; !ok {
				addConv(conv, []int{i, j})
			}
			w.targets[i] = append(w.targets[i], nlTarget{conv: conv, to: w.users[j].id})
		}
	}
	// Groups: user i is in group i%groups and in group (i*groups/users);
	// members are spread over every kind of user.
	for g := range cfg.groups {
		var members []int
		for i := range cfg.users {
			if i%cfg.groups == g || i*cfg.groups/cfg.users == g {
				members = append(members, i)
			}
		}
		creator := w.devices[members[0]][0]
		gid, err := creator.CreateGroup(ctx(t), c.name("g"), "no-loss")
		if err != nil {
			t.Fatalf("create group: %v", err)
		}
		for _, m := range members[1:] {
			if _, err := w.devices[m][0].JoinGroup(ctx(t), gid); err != nil {
				t.Fatalf("join group %d: %v", gid, err)
			}
		}
		w.groups = append(w.groups, gid)
		conv := clusterchat.GroupConv(gid)
		addConv(conv, members)
		for _, m := range members {
			w.targets[m] = append(w.targets[m], nlTarget{conv: conv, gid: gid})
		}
	}
	// One message into every conversation, from its first member.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, conv := range slices.Sorted(maps.Keys(w.members)) {
		from := w.members[conv][0]
		var tg nlTarget
		for _, x := range w.targets[from] {
			if x.conv == conv {
				tg = x
			}
		}
		if tg.conv == "" {
			// A 1:1 conversation only the other member sends into.
			from = w.members[conv][1]
			for _, x := range w.targets[from] {
				if x.conv == conv {
					tg = x
				}
			}
		}
		if err := w.send(context.Background(), rng, from, tg, fmt.Sprintf("warm-up %s", conv)); err != nil {
			t.Fatalf("warm-up message into %s: %v", conv, err)
		}
	}
	missing := func() []string {
		var out []string
		for ui, devs := range w.devices {
			for di, d := range devs {
				for _, conv := range w.convsOf[ui] {
					if len(d.messages(conv)) == 0 {
						out = append(out, fmt.Sprintf("user %d (index %d) device %d: %s", d.u.id, ui, di, conv))
					}
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(readTimeout)
	for delay := time.Millisecond; len(missing()) > 0; delay = min(2*delay, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			// protocol.md: every device receives every message of its
			// conversations live, the user's own ones from other devices
			// included; nothing here was cut or killed.
			t.Fatalf("after %v with no fault, devices that never received the warm-up message of their conversation live:\n%s",
				readTimeout, strings.Join(missing(), "\n"))
		}
		time.Sleep(delay)
	}
	return w
}

// traffic runs one sender per user until stop is called: each picks one of
// its conversations at random, a device at random, and sends. stop waits
// for every sender; abort (on a failing test) also ends the sends in flight.
func (w *nlWorld) traffic() (stop func(abort bool)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var wg sync.WaitGroup
	for ui := range w.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(ui), uint64(time.Now().UnixNano())))
			t := time.NewTimer(0)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-done:
					return
				case <-t.C:
				}
				tg := w.targets[ui][rng.IntN(len(w.targets[ui]))]
				_ = w.send(ctx, rng, ui, tg, fmt.Sprintf("u%d #%d -> %s", w.users[ui].id, k, tg.conv))
				t.Reset(nlPace/2 + rand.N(nlPace))
			}
		}()
	}
	var once sync.Once
	return func(abort bool) {
		once.Do(func() {
			close(done)
			if abort {
				cancel()
			}
			wg.Wait()
			cancel()
		})
	}
}

// cutter resets random live connections of p about every period until the
// returned stop is called, which waits for it.
func cutter(p *cutProxy, period time.Duration, frac float64) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		rng := rand.New(rand.NewPCG(3, uint64(time.Now().UnixNano())))
		t := time.NewTimer(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p.CutRandom(rng, frac)
			t.Reset(period/2 + rand.N(period))
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-ended }) }
}

// storeView is the store's content as fresh devices fetch it: conv -> seq
// -> message.
type storeView map[string]map[int64]*clusterchat.Message

// fetchStore logs every user in on a fresh device (no cursors, so it
// fetches the whole log of each of its conversations with SYNC) and
// collects what the store holds. Two users' views of one conversation must
// agree.
func (w *nlWorld) fetchStore(t *testing.T, addr string) storeView {
	t.Helper()
	view := storeView{}
	for _, u := range w.users {
		n := nativeAt(t, addr, u, client.Options{RequestTimeout: 10 * time.Second})
		sctx, cancel := context.WithTimeout(context.Background(), nlCatchUp)
		err := n.Synced(sctx)
		cancel()
		if err != nil {
			t.Fatalf("fresh device of user %d: catching up: %v", u.id, err)
		}
		testenv.WaitFor(t, readTimeout, fmt.Sprintf("fresh device of user %d emits every message of its login's conversations", u.id), func() bool {
			for _, cv := range n.info.Convs {
				if int64(len(n.messages(cv.Conv))) < cv.Last {
					return false
				}
			}
			return true
		})
		for _, cv := range n.info.Convs {
			msgs := n.messages(cv.Conv)
			if view[cv.Conv] == nil {
				view[cv.Conv] = map[int64]*clusterchat.Message{}
			}
			for _, m := range msgs {
				if o := view[cv.Conv][m.Seq]; o != nil && (o.ID != m.ID || o.Body != m.Body || o.From != m.From) {
					t.Errorf("store view of %s seq %d differs between users: mid %d %q from %d vs mid %d %q from %d",
						cv.Conv, m.Seq, o.ID, o.Body, o.From, m.ID, m.Body, m.From)
				}
				view[cv.Conv][m.Seq] = m
			}
		}
		n.Close()
	}
	return view
}

// nlCounts is the outcome of a run.
type nlCounts struct {
	sent, accepted, unknown, dupAcks          int
	expected, delivered, lost, duplicated     int
	outOfOrder, wrong, gaps, storeBad, stored int
}

func (n nlCounts) String() string {
	return fmt.Sprintf("sent=%d accepted=%d unknown=%d dup-acks=%d stored=%d | deliveries expected=%d delivered=%d lost=%d duplicated=%d out-of-order=%d wrong=%d gaps=%d store-bad=%d",
		n.sent, n.accepted, n.unknown, n.dupAcks, n.stored, n.expected, n.delivered, n.lost, n.duplicated, n.outOfOrder, n.wrong, n.gaps, n.storeBad)
}

func (n nlCounts) ok() bool {
	return n.lost == 0 && n.duplicated == 0 && n.outOfOrder == 0 && n.wrong == 0 && n.gaps == 0 && n.storeBad == 0
}

// verify catches every device up and compares what it emitted with the
// ledger and the store. It logs up to a few examples of each problem.
func (w *nlWorld) verify(t *testing.T, view storeView) nlCounts {
	t.Helper()
	var n nlCounts
	w.ledger.mu.Lock()
	acks := slices.Clone(w.ledger.accepted)
	n.sent, n.accepted, n.dupAcks = w.ledger.sent, len(acks), w.ledger.dupAcks
	for msg, k := range w.ledger.unknown {
		n.unknown += k
		t.Logf("send failed %d times: %s", k, msg)
	}
	w.ledger.mu.Unlock()
	examples := map[string]int{}
	report := func(kind, format string, args ...any) {
		if examples[kind]++; examples[kind] <= 5 {
			t.Logf(kind+": "+format, args...)
		}
	}

	// The ledger against the store: every ack names a stored message with
	// the sender and text it was sent with, and no seq was acknowledged twice
	// to different messages.
	byPlace := map[[2]any]nlAck{}
	for _, a := range acks {
		key := [2]any{a.conv, a.seq}
		if o, ok := byPlace[key]; ok && o.mid != a.mid {
			n.storeBad++
			report("seq acknowledged twice", "%s seq %d: mid %d (%q) and mid %d (%q)", a.conv, a.seq, o.mid, o.body, a.mid, a.body)
		}
		byPlace[key] = a
		m := view[a.conv][a.seq]
		if m == nil || m.ID != a.mid || m.From != a.from || m.Body != a.body {
			n.storeBad++
			report("accepted but not in the store as acknowledged", "%+v; store has %+v", a, m)
		}
	}
	last := map[string]int64{}
	for conv, msgs := range view {
		for seq := range msgs {
			last[conv] = max(last[conv], seq)
		}
		n.stored += len(msgs)
	}
	ackedIn := map[string][]nlAck{}
	for _, a := range acks {
		ackedIn[a.conv] = append(ackedIn[a.conv], a)
	}

	// Every device catches up (Sync asks for everything past its cursors in
	// every conversation it knows: all of its own since the warm-up).
	for _, devs := range w.devices {
		for _, d := range devs {
			sctx, cancel := context.WithTimeout(context.Background(), nlCatchUp)
			err := d.Sync(sctx)
			cancel()
			if err != nil {
				t.Errorf("device of user %d: Sync: %v", d.u.id, err)
			}
		}
	}
	// Events reach the collector asynchronously: wait (bounded) until each
	// device emitted as many messages as the store holds, then judge
	// whatever is there.
	deadline := time.Now().Add(readTimeout)
	for delay := time.Millisecond; time.Now().Before(deadline); delay = min(2*delay, 100*time.Millisecond) {
		behind := false
		for ui, devs := range w.devices {
			for _, d := range devs {
				for _, conv := range w.convsOf[ui] {
					if int64(len(d.messages(conv))) < last[conv] {
						behind = true
					}
				}
			}
		}
		if !behind {
			break
		}
		time.Sleep(delay)
	}

	for ui, devs := range w.devices {
		for di, d := range devs {
			for _, conv := range w.convsOf[ui] {
				name := fmt.Sprintf("user %d device %d %s", d.u.id, di, conv)
				seen := map[int64]bool{}
				var high int64
				for _, m := range d.messages(conv) {
					switch {
					case seen[m.Seq]:
						n.duplicated++
						report("duplicated", "%s: seq %d (mid %d) emitted again", name, m.Seq, m.ID)
						continue
					case m.Seq < high:
						n.outOfOrder++
						report("out of order", "%s: seq %d after seq %d", name, m.Seq, high)
					}
					seen[m.Seq] = true
					high = max(high, m.Seq)
					if s := view[conv][m.Seq]; s != nil && (s.ID != m.ID || s.From != m.From || s.Body != m.Body) {
						n.wrong++
						report("wrong message", "%s seq %d: device has mid %d %q, store mid %d %q", name, m.Seq, m.ID, m.Body, s.ID, s.Body)
					}
				}
				for _, a := range ackedIn[conv] {
					n.expected++
					if seen[a.seq] {
						n.delivered++
					} else {
						n.lost++
						report("lost", "%s: accepted seq %d (mid %d %q) never emitted (device cursor %d)", name, a.seq, a.mid, a.body, high)
					}
				}
				for seq := int64(1); seq <= last[conv]; seq++ {
					if !seen[seq] && byPlace[[2]any{conv, seq}].mid == 0 {
						// Stored though its sender got no ack: still part
						// of the log every device must hold.
						n.gaps++
						report("gap", "%s: stored seq %d (unacknowledged send) never emitted", name, seq)
					}
				}
			}
		}
	}
	return n
}

// reconnects counts how many times the devices reconnected.
func (w *nlWorld) reconnects() int {
	k := 0
	for _, devs := range w.devices {
		for _, d := range devs {
			k += len(d.find(func(e client.Event) bool { return e.Kind == client.EventReconnected }))
		}
	}
	return k
}

// run is the common part: traffic with random cuts while script runs the
// faults, then traffic a little longer, catching up, checking.
func (w *nlWorld) run(t *testing.T, label string, p *cutProxy, freshAddr string, script func()) {
	t.Helper()
	stopTraffic := w.traffic()
	stopCuts := cutter(p, time.Second, 0.25)
	defer func() {
		stopCuts()
		stopTraffic(t.Failed())
	}()
	start := time.Now()
	script()
	// Traffic goes on a little after the last fault, with cuts.
	base := w.acceptedCount()
	testenv.WaitFor(t, nlSendDeadline, "traffic accepted after the last fault", func() bool {
		return w.acceptedCount() >= base+3*len(w.users)
	})
	// One last reset of everyone, then quiet: the sends in flight retry
	// on the new connections.
	p.CutAll()
	stopCuts()
	stopTraffic(false)
	t.Logf("%s: traffic and faults took %v; proxy: %d connections, %d cut, %d refused upstream",
		label, time.Since(start).Round(100*time.Millisecond), p.accepted.Load(), p.cut.Load(), p.dialErrs.Load())

	fetched := time.Now()
	view := w.fetchStore(t, freshAddr)
	t.Logf("%s: fresh devices fetched the store in %v", label, time.Since(fetched).Round(100*time.Millisecond))
	verified := time.Now()
	n := w.verify(t, view)
	t.Logf("%s: devices caught up and were checked in %v", label, time.Since(verified).Round(100*time.Millisecond))
	t.Logf("%s: %v; reconnects=%d", label, n, w.reconnects())
	if !n.ok() {
		t.Fatalf("%s: messages lost, duplicated, reordered or wrong: %v", label, n)
	}
	if n.accepted < 10*len(w.users) {
		t.Fatalf("%s: only %d messages accepted: the run proves little", label, n.accepted)
	}
}

func (w *nlWorld) acceptedCount() int {
	w.ledger.mu.Lock()
	defer w.ledger.mu.Unlock()
	return len(w.ledger.accepted)
}

// pause lets the traffic run for d (with cuts going on): the time between
// faults, not a wait for a condition.
func pause(d time.Duration) { time.Sleep(d) }

// TestNoLossCluster: three servers behind nginx with PostgreSQL and Redis;
// the Go clients connect through a cut proxy in front of nginx. Faults, in
// order, under traffic and random cuts: SIGKILL of n2 and its restart, a
// Redis restart (SIGKILL, empty data set), a SIGTERM roll of n3.
func TestNoLossCluster(t *testing.T) {
	began := time.Now()
	c := startCluster(t, 3)
	t.Logf("cluster up in %v", time.Since(began).Round(100*time.Millisecond))
	p := startCutProxy(t, c.nginx.StreamAddr())
	began = time.Now()
	w := newNLWorld(t, c, c.servers[0].Addr(), p.Addr(), nlConfig{users: 12, twoDevices: 4, groups: 4, peers: []int{1, 5}})
	t.Logf("users, devices, groups and warm-up in %v", time.Since(began).Round(100*time.Millisecond))
	w.run(t, "cluster", p, p.Addr(), func() {
		logf := func(format string, args ...any) {
			t.Logf("fault: "+format+" (accepted so far %d)", append(args, w.acceptedCount())...)
		}
		pause(3 * time.Second)

		n2 := c.servers[1]
		n2.Kill(t)
		logf("SIGKILL n2")
		pause(time.Second)
		n2.Restart(t)
		waitReady(t, n2, 60*time.Second)
		logf("n2 restarted and ready")
		pause(3 * time.Second)

		c.redis.Kill(t)
		logf("SIGKILL redis")
		pause(time.Second)
		c.redis.Start(t)
		for _, s := range c.servers {
			waitReady(t, s, 60*time.Second)
		}
		logf("redis restarted, every server ready")
		pause(3 * time.Second)

		n3 := c.servers[2]
		if code := n3.Term(t); code != 0 {
			t.Errorf("n3 exited with %d after SIGTERM, want 0", code)
		}
		logf("SIGTERM n3: exited")
		n3.Restart(t)
		waitReady(t, n3, 60*time.Second)
		logf("n3 restarted and ready")
	})
}

// TestNoLossSingleNode: one server with SQLite and the in-memory broker,
// the Go clients through a cut proxy. Faults under traffic and random cuts:
// SIGKILL of the node and a restart on the same SQLite file and addresses,
// then a SIGTERM restart.
func TestNoLossSingleNode(t *testing.T) {
	bin := testenv.BuildServer(t)
	db := filepath.Join(t.TempDir(), "chat.db")
	s := testenv.StartServer(t, bin, "-store", "sqlite:"+db, "-broker", "memory", "-node", "solo", "-bcrypt-cost", "4")
	waitReady(t, s, readTimeout)
	c := &cluster{bin: bin, servers: []*testenv.Server{s}}
	p := startCutProxy(t, s.Addr())
	w := newNLWorld(t, c, s.Addr(), p.Addr(), nlConfig{users: 8, twoDevices: 3, groups: 3, peers: []int{1, 3}})
	w.run(t, "single node", p, p.Addr(), func() {
		logf := func(format string, args ...any) {
			t.Logf("fault: "+format+" (accepted so far %d)", append(args, w.acceptedCount())...)
		}
		pause(3 * time.Second)
		s.Kill(t)
		logf("SIGKILL the node")
		pause(time.Second)
		s.Restart(t)
		waitReady(t, s, 60*time.Second)
		logf("node restarted on the same SQLite file")
		pause(3 * time.Second)
		if code := s.Term(t); code != 0 {
			t.Errorf("node exited with %d after SIGTERM, want 0", code)
		}
		logf("SIGTERM the node: exited")
		s.Restart(t)
		waitReady(t, s, 60*time.Second)
		logf("node restarted")
		pause(3 * time.Second)
	})
	if strings.Contains(s.Log(), "panic") {
		t.Errorf("the node panicked:\n%s", s.Log())
	}
}
