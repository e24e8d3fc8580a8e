package server

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/proto"
)

// BenchmarkFanout measures delivering one group message to the local
// sessions of its members: envelope decode, hub lookup, per-session queueing
// and the socket writes, over real loopback TCP connections whose far ends
// are drained.
func BenchmarkFanout(b *testing.B) {
	for _, members := range []int{1, 10, 100} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) {
			s := New(Config{MaxQueue: 1 << 30}, slog.New(slog.DiscardHandler))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			set := make(map[*session]struct{})
			for i := range members {
				cli, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				srvSide, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				go io.Copy(io.Discard, cli)
				defer cli.Close()
				defer srvSide.Close()
				c := newConn(s, srvSide)
				c.classic = false
				sess := &session{srv: s, c: c, uid: int64(i + 2), sid: "s" + strconv.Itoa(i), native: true}
				set[sess] = struct{}{}
			}
			s.hub.groups[1] = set
			m := &clusterchat.Message{ID: 1, Conv: "g:1", Seq: 1, From: 1, FromName: "alice", GroupID: 1,
				Body: "hello everybody, this is a message of about sixty-four bytes", CTime: "2026-11-26 10:00:00", Time: time.Now()}
			e := &envelope{kind: kindMessage, conv: m.Conv, seq: m.Seq, from: m.From, group: 1,
				classic: appendNL(proto.AppendClassicChat(nil, m)), native: appendNL(proto.AppendNativeChat(nil, m))}
			payload := e.marshal(nil)
			b.ReportAllocs()
			for b.Loop() {
				s.HandleMessage(clusterchat.GroupChannel(1), payload)
			}
			b.StopTimer()
			s.wg.Wait()
			b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
