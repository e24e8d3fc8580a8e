package server

import (
	"testing"
	"time"

	"clusterchat"
)

// TestOwnDups: after a retried append, a duplicate stored by an earlier
// attempt of the same batch (stamped at or after the batch began) is new
// again, to be acknowledged and published; a resend of an older message
// and a repeat within the batch stay duplicates.
func TestOwnDups(t *testing.T) {
	first := time.Date(2026, 12, 1, 10, 0, 0, 500_700_000, time.UTC) // truncated to .500 by the check
	at := func(d time.Duration) time.Time { return first.Truncate(time.Millisecond).Add(d) }
	for _, tc := range []struct {
		name string
		msgs []clusterchat.Message
		want []bool // Dup after ownDups
	}{
		{"fresh stays fresh", []clusterchat.Message{{ID: 1, Time: at(0)}}, []bool{false}},
		{"stored by the first attempt", []clusterchat.Message{{ID: 1, Time: at(0), Dup: true}}, []bool{false}},
		{"stored by a later attempt", []clusterchat.Message{{ID: 1, Time: at(3 * time.Second), Dup: true}}, []bool{false}},
		{"resend of an older message", []clusterchat.Message{{ID: 1, Time: at(-time.Millisecond), Dup: true}}, []bool{true}},
		{"repeat within the batch", []clusterchat.Message{
			{ID: 1, Time: at(0)},
			{ID: 1, Time: at(0), Dup: true},
		}, []bool{false, true}},
		{"repeat of an own duplicate", []clusterchat.Message{
			{ID: 7, Time: at(time.Second), Dup: true},
			{ID: 7, Time: at(time.Second), Dup: true},
			{ID: 3, Time: at(-time.Hour), Dup: true},
		}, []bool{false, true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := make([]*clusterchat.Message, len(tc.msgs))
			for i := range tc.msgs {
				msgs[i] = &tc.msgs[i]
			}
			ownDups(msgs, first)
			for i, m := range msgs {
				if m.Dup != tc.want[i] {
					t.Errorf("message %d (id %d): Dup %v, want %v", i, m.ID, m.Dup, tc.want[i])
				}
			}
		})
	}
}
