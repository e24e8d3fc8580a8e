package proto

import (
	"encoding/json"
	"testing"
	"time"

	"clusterchat"
)

// TestRetryHint: a rate-limited native reply carries retry_ms; the classic
// reply keeps its shape and says when in errmsg.
func TestRetryHint(t *testing.T) {
	err := clusterchat.RateLimited(1500*time.Millisecond, "sending too fast")
	tests := []struct {
		req    int
		native bool
		want   string
	}{
		{OneChat, true, `{"errmsg":"sending too fast; try again in 2s","errno":12,"msgid":11,"req":6,"rid":7,"retry_ms":1500}`},
		{OneChat, false, `{"errmsg":"sending too fast; try again in 2s","errno":12,"msgid":11,"req":6}`},
		{Login, false, `{"errmsg":"sending too fast; try again in 2s","errno":12,"msgid":2}`},
		{Login, true, `{"errmsg":"sending too fast; try again in 2s","errno":12,"msgid":2,"rid":7,"retry_ms":1500}`},
	}
	for _, tc := range tests {
		got := string(AppendError(nil, tc.req, 7, tc.native, err))
		if got != tc.want || !json.Valid([]byte(got)) {
			t.Errorf("AppendError(%d, native=%v) = %s, want %s", tc.req, tc.native, got, tc.want)
		}
	}
	if got := string(AppendError(nil, OneChat, 7, true, clusterchat.Errorf(clusterchat.EINVALID, "x"))); got != `{"errmsg":"x","errno":3,"msgid":11,"req":6,"rid":7}` {
		t.Errorf("an error without a hint got one: %s", got)
	}
}
