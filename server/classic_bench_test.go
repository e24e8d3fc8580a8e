package server

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

// BenchmarkConnSend measures one connection's write path for a burst of
// chat objects to a peer that reads as fast as it can, classic (one record
// per write, each once the previous one has left) and native (coalesced
// writes): the cost of pacing a classic session.
func BenchmarkConnSend(b *testing.B) {
	for _, mode := range []string{"native", "classic"} {
		b.Run(mode, func(b *testing.B) {
			s := New(Config{MaxQueue: 1 << 30}, slog.New(slog.DiscardHandler))
			srvSide, cli := tcpPair(b)
			read := make(chan int64, 1)
			go func() {
				n, _ := io.Copy(io.Discard, cli)
				read <- n
			}()
			c := newConn(s, srvSide)
			c.classic = mode == "classic"
			m := &clusterchat.Message{ID: 1, Conv: "d:1:2", Seq: 1, From: 1, FromName: "alice", To: 2,
				Body: "hello, this is a message of about sixty-four bytes of chat text", CTime: "2026-11-26 10:00:00", Time: time.Now()}
			obj := appendNL(proto.AppendClassicChat(nil, m))
			for b.Loop() {
				c.send(outItem{b: obj})
				// A burst source the connection keeps up with: no cut.
				for c.queuedForBench() > 4<<20 {
					time.Sleep(time.Millisecond)
				}
			}
			// Until everything has been written.
			for {
				c.mu.Lock()
				done := !c.flushing && len(c.pending) == 0
				c.mu.Unlock()
				if done {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
			b.StopTimer()
			srvSide.Close()
			n := <-read
			cli.Close()
			s.wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
			b.ReportMetric(float64(n)/float64(b.N), "wire-bytes/object")
		})
	}
}

func (c *conn) queuedForBench() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}
