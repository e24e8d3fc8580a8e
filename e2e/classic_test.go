package e2e

import (
	"testing"

	"clusterchat/internal/testenv"
)

// testClassicOriginal runs the issue-13 scenarios (a login with 50 offline
// messages, a burst of 200 from 5 senders) across the cluster with clients
// that read exactly like the original classic client: the target logs in
// through nginx, the senders directly on every server. Only the reader
// that keeps up: one that falls a receive window behind lets nginx cut
// records at the window's edge, which the server cannot prevent (see
// docs/protocol.md); server.TestClassicOriginalClient runs those directly.
func testClassicOriginal(t *testing.T, c *cluster) {
	var senders []string
	for _, s := range c.servers {
		senders = append(senders, s.Addr())
	}
	committed := func(tb testing.TB) float64 {
		var n float64
		for _, s := range c.servers {
			n += metrics(tb, s.HTTPAddr())["chat_messages_accepted_total"]
		}
		return n
	}
	for _, rd := range testenv.ClassicReaders[:1] { // the others fill nginx's leg: see docs/protocol.md
		t.Run(rd.Name, func(t *testing.T) {
			testenv.RunClassicScenarios(t, testenv.ClassicSetup{
				Target:    c.nginx.StreamAddr(),
				Senders:   senders,
				Committed: committed,
				Stall:     rd.Stall,
			})
		})
	}
}
