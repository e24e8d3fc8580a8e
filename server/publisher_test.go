package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/proto"
)

// gatedBroker is the real in-memory broker whose publishes on some users'
// channels wait for a gate to open (a stalled Redis connection, a huge
// fan-out). It is not an InProcessBroker, so the server publishes to it as
// to Redis.
type gatedBroker struct {
	clusterchat.Broker
	gate    chan struct{}
	waiting atomic.Int32 // publishes held at the gate

	mu   sync.Mutex
	slow map[clusterchat.Channel]bool
}

func (b *gatedBroker) Publish(ctx context.Context, ch clusterchat.Channel, payload []byte) error {
	b.mu.Lock()
	slow := b.slow[ch]
	b.mu.Unlock()
	if slow {
		b.waiting.Add(1)
		select {
		case <-b.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Broker.Publish(ctx, ch, payload)
}

// TestSlowPublishHoldsOnlyItsChannel: while every publish on the channels
// of 64 recipients hangs, alice's messages to them are still committed and
// acknowledged, and carol's message to dave is delivered at once (with a
// fixed set of publisher workers chosen by channel, 64 stuck channels hold
// every worker but with a chance of (15/16)^64 for 16 workers); once the
// channels move again, bob (one of the 64) gets alice's three messages once
// each, in order, and each stuck channel had one publish in flight.
func TestSlowPublishHoldsOnlyItsChannel(t *testing.T) {
	gb := &gatedBroker{gate: make(chan struct{}), slow: make(map[clusterchat.Channel]bool)}
	ts := wiretest.StartServerBroker(t, nil, func(b clusterchat.Broker) clusterchat.Broker {
		gb.Broker = b
		return gb
	})
	login := func(name string) (*wiretest.Conn, int64) {
		c := wiretest.Dial(t, ts.TCP, 10*time.Second)
		id := c.Register(name, "pw-"+name)
		c.NativeLogin(id, "pw-"+name)
		return c, id
	}
	alice, _ := login("alice")
	bob, bobID := login("bob")
	carol, _ := login("carol")
	dave, daveID := login("dave")
	reg := wiretest.Dial(t, ts.TCP, 10*time.Second)
	stuck := []int64{bobID}
	for i := range 63 {
		stuck = append(stuck, reg.Register(fmt.Sprintf("far%d", i), "pw"))
	}
	gb.mu.Lock()
	for _, id := range stuck {
		gb.slow[clusterchat.UserChannel(id)] = true
	}
	gb.mu.Unlock()
	opened := false
	open := func() {
		if !opened {
			opened = true
			close(gb.gate)
		}
	}
	defer open()

	for i := 1; i <= 3; i++ {
		alice.Call(proto.OneChat, `{"msgid":6,"to":%d,"msg":"to bob %d"}`, bobID, i).Check(t, "seq", int64(i))
	}
	for _, id := range stuck[1:] {
		alice.Call(proto.OneChat, `{"msgid":6,"to":%d,"msg":"far"}`, id)
	}
	testenv.WaitFor(t, 10*time.Second, "a publish on every stuck channel at the gate", func() bool {
		return gb.waiting.Load() >= int32(len(stuck))
	})
	carol.Call(proto.OneChat, `{"msgid":6,"to":%d,"msg":"to dave"}`, daveID)
	dave.Expect(proto.OneChat, "msg", "to dave")
	if n := gb.waiting.Load(); n != int32(len(stuck)) {
		// One publish in flight per channel; bob's other two queue behind
		// it and go out after it.
		t.Fatalf("%d publishes reached the gate for %d stuck channels, want one each", n, len(stuck))
	}

	open()
	for i := 1; i <= 3; i++ {
		bob.Expect(proto.OneChat, "msg", fmt.Sprintf("to bob %d", i), "seq", int64(i))
	}
	bob.Ping() // and nothing else came before the ping's reply
}
