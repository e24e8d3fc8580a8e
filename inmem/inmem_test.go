package inmem_test

import (
	"context"
	"sync/atomic"
	"testing"

	"clusterchat"
	"clusterchat/brokertest"
	"clusterchat/inmem"
	"clusterchat/limitertest"
	"clusterchat/presencetest"
)

func TestBroker(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, h clusterchat.BrokerHandler) clusterchat.Broker {
		return inmem.NewBroker(h)
	}, brokertest.SingleProcess())
}

func TestPresence(t *testing.T) {
	presencetest.Run(t, func(t *testing.T, node string) clusterchat.Presence {
		return inmem.NewPresence()
	}, presencetest.SingleProcess())
}

type nopHandler struct{}

func (nopHandler) HandleMessage(clusterchat.Channel, []byte) {}
func (nopHandler) HandleReconnect()                          {}

// BenchmarkPublish measures the in-process fast path: Publish to a
// subscribed channel, handler called synchronously.
func BenchmarkPublish(b *testing.B) {
	ctx := context.Background()
	br := inmem.NewBroker(nopHandler{})
	defer br.Close()
	if err := br.Subscribe(ctx, clusterchat.UserChannel(1)); err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"type":"msg","from":1,"to":2,"body":"hello"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := br.Publish(ctx, clusterchat.UserChannel(1), payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPublishChannels is BenchmarkPublish with every publisher on its
// own channel, as users of a real server are.
func BenchmarkPublishChannels(b *testing.B) {
	ctx := context.Background()
	br := inmem.NewBroker(nopHandler{})
	defer br.Close()
	var next atomic.Int64
	payload := []byte(`{"type":"msg","from":1,"to":2,"body":"hello"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ch := clusterchat.UserChannel(next.Add(1))
		if err := br.Subscribe(ctx, ch); err != nil {
			b.Fatal(err)
		}
		for pb.Next() {
			if err := br.Publish(ctx, ch, payload); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestLimiter(t *testing.T) {
	limitertest.Run(t, func(t *testing.T) (clusterchat.Limiter, clusterchat.Limiter) {
		l := inmem.NewLimiter()
		return l, l
	})
}
