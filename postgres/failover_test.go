package postgres_test

import (
	"context"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
)

// TestFailover fails a Store over to a promoted standby, once with
// synchronous and once with asynchronous replication, after cutting the
// standby off the primary (its WAL receiver stopped) and appending: what
// the README says an acknowledged message survives, shown rather than
// assumed.
//
//   - sync: the append after the cut is not acknowledged (its commit waits
//     for the standby), nor is a retry of it on the old primary, where it
//     is committed locally: every acknowledged message is on the new
//     primary, and the unacknowledged one, sent again with its cmid, is
//     stored once.
//   - async: the append after the cut is acknowledged at once and is gone
//     after the failover: the last moments before it are lost.
//
// In both, the Store follows the promotion by itself (a DSN with both
// hosts and target_session_attrs=read-write), its failures meanwhile are
// transient, and nothing from before the cut is lost.
func TestFailover(t *testing.T) {
	for _, tc := range []struct {
		name string
		sync bool
	}{{"sync", true}, {"async", false}} {
		t.Run(tc.name, func(t *testing.T) {
			primary := testenv.NewPostgres(t)
			dsn := primary.CreateDB(t)
			standby := primary.StartStandby(t, tc.sync)
			s := mustOpen(t, testenv.FailoverDSN(t, dsn, primary, standby))
			c := context.Background()
			a, err := s.CreateUser(c, "a", "x")
			if err != nil {
				t.Fatal(err)
			}
			gid, err := s.CreateGroup(c, a, "g", "")
			if err != nil {
				t.Fatal(err)
			}
			conv := clusterchat.GroupConv(gid)
			msg := func(body string) []*clusterchat.Message {
				return []*clusterchat.Message{{Conv: conv, From: a, FromName: "a", GroupID: gid, Body: body, CMID: body}}
			}
			appendFor := func(d time.Duration, body string) error {
				ctx, cancel := context.WithTimeout(c, d)
				defer cancel()
				return s.Append(ctx, msg(body))
			}
			var acked []string
			for _, b := range []string{"one", "two", "three"} {
				if err := appendFor(time.Minute, b); err != nil {
					t.Fatalf("append %q: %v", b, err)
				}
				acked = append(acked, b)
			}
			primary.WaitReplayed(t, standby)
			standby.CutReplication(t)

			err = appendFor(3*time.Second, "cut")
			switch {
			case tc.sync && err == nil:
				t.Fatalf("sync: an append acknowledged with the standby cut off")
			case tc.sync:
				if !clusterchat.IsTransient(err) {
					t.Errorf("sync: append waiting for the standby: %v, want a transient error", err)
				}
				// The retry a committer makes: the message is committed on
				// the primary alone and must not be acknowledged as a
				// duplicate of that.
				if err := appendFor(3*time.Second, "cut"); err == nil {
					t.Fatalf("sync: a retry acknowledged a message the standby does not have")
				}
			case err != nil:
				t.Fatalf("async: append with the standby cut off: %v", err)
			default:
				acked = append(acked, "cut")
			}

			primary.Kill(t)
			if err := appendFor(10*time.Second, "down"); !clusterchat.IsTransient(err) {
				t.Errorf("append with the primary dead and the standby not promoted: %v, want a transient error", err)
			}
			standby.Promote(t)
			testenv.WaitFor(t, 30*time.Second, "an append on the promoted standby", func() bool {
				return appendFor(10*time.Second, "after") == nil
			})
			acked = append(acked, "after")
			if tc.sync {
				// The sender of "cut" got no ack and sends it again.
				m := msg("cut")
				if err := s.Append(c, m); err != nil {
					t.Fatalf("sync: resend of the unacknowledged message: %v", err)
				}
				if m[0].Dup {
					t.Errorf("sync: resend of the unacknowledged message found a copy on the new primary")
				}
				acked = append(acked, "cut")
			}

			got, err := s.Since(c, conv, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for i, m := range got {
				count[m.Body]++
				if m.Seq != int64(i+1) {
					t.Errorf("seq %d at position %d: a gap", m.Seq, i)
				}
			}
			var lost []string
			for _, b := range acked {
				if count[b] != 1 {
					lost = append(lost, b)
				}
			}
			t.Logf("%s: acknowledged %q; after the failover the store holds %d messages; missing or repeated: %q",
				tc.name, acked, len(got), lost)
			switch {
			case tc.sync && len(lost) > 0:
				t.Errorf("sync: acknowledged messages lost or repeated across the failover: %q", lost)
			case !tc.sync && (len(lost) != 1 || lost[0] != "cut"):
				t.Errorf("async: lost %q, want exactly the message acknowledged after the cut", lost)
			}
		})
	}
}
