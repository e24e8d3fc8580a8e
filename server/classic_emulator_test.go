package server_test

import (
	"testing"

	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
)

// TestClassicOriginalClient runs the issue-13 scenarios (a login with 50
// offline messages, a burst of 200 from 5 senders) against one server with
// clients that read exactly like the original classic client: one recv of
// at most 1024 bytes, parsed as one object. The stalling reader pauses now
// and then, so that many objects wait in its socket when it reads: with
// records (docs/protocol.md) that is harmless, not improbable.
func TestClassicOriginalClient(t *testing.T) {
	for _, rd := range testenv.ClassicReaders {
		t.Run(rd.Name, func(t *testing.T) {
			ts := wiretest.StartServer(t, nil)
			testenv.RunClassicScenarios(t, testenv.ClassicSetup{
				Target:  ts.TCP,
				Senders: []string{ts.TCP},
				Committed: func(tb testing.TB) float64 {
					return metric(tb, ts, "chat_messages_accepted_total")
				},
				Stall: rd.Stall,
			})
		})
	}
}
