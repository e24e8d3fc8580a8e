package server_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/internal/wiretest"
	"clusterchat/server"
)

// flakyStore is a real store that fails on demand: Append while
// failAppend is set, MarkDelivered and MarkRead while failCursors is set,
// with EUNAVAILABLE (Transient when transient is set). It records the
// cursor moves it refused.
type flakyStore struct {
	clusterchat.Store
	transient   bool
	failAppend  atomic.Bool
	failCursors atomic.Bool

	mu      sync.Mutex
	refused []clusterchat.Cursor // MarkDelivered moves refused
}

func (f *flakyStore) down() error {
	return &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Message: "store down (test)", Transient: f.transient}
}

func (f *flakyStore) Append(ctx context.Context, msgs []*clusterchat.Message) error {
	if f.failAppend.Load() {
		return f.down()
	}
	return f.Store.Append(ctx, msgs)
}

func (f *flakyStore) MarkDelivered(ctx context.Context, moves []clusterchat.Cursor) error {
	if f.failCursors.Load() {
		f.mu.Lock()
		f.refused = append(f.refused, moves...)
		f.mu.Unlock()
		return f.down()
	}
	return f.Store.MarkDelivered(ctx, moves)
}

func (f *flakyStore) MarkRead(ctx context.Context, moves []clusterchat.Cursor) error {
	if f.failCursors.Load() {
		return f.down()
	}
	return f.Store.MarkRead(ctx, moves)
}

// refusedFor tells whether a delivered-cursor move of user was refused.
func (f *flakyStore) refusedFor(user int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.refused, func(c clusterchat.Cursor) bool { return c.User == user })
}

// startFlaky starts a server on a flakyStore.
func startFlaky(tb testing.TB, transient bool, edit func(*server.Config)) (*wiretest.Server, *flakyStore) {
	tb.Helper()
	var flaky *flakyStore
	w := wiretest.StartServerStore(tb, edit, func(st clusterchat.Store) clusterchat.Store {
		flaky = &flakyStore{Store: st, transient: transient}
		return flaky
	})
	return w, flaky
}

// TestCommitterStoreFailure: while the store refuses appends, every sender
// (native with its rid, classic without) gets errno 9 and nothing is
// stored or delivered; a transient failure is retried first, but not past
// Config.StoreRetry. Once the store is back the same messages go through
// with seq 1, so the refused attempts left nothing behind.
func TestCommitterStoreFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		transient bool
	}{
		{"permanent", false},
		{"transient past the retry bound", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, flaky := startFlaky(t, tc.transient, func(c *server.Config) { c.StoreRetry = 300 * time.Millisecond })
			alice, bob, carol := newUser(t, ts, "alice"), newUser(t, ts, "bob"), newUser(t, ts, "carol")
			an, _ := alice.native(t, ts)
			cc, _ := carol.classic(t, ts)
			bc, _ := bob.classic(t, ts)

			flaky.failAppend.Store(true)
			rid := an.Req(`{"msgid":6,"to":%d,"msg":"refused","cmid":"r1"}`, bob.id)
			an.Expect(11, "req", 6, "rid", rid, "errno", clusterchat.EUNAVAILABLE)
			cc.Sendf(`{"msgid":6,"id":%d,"name":"carol","to":%d,"msg":"refused too"}`, carol.id, bob.id)
			if o := cc.ExpectErr(6, clusterchat.EUNAVAILABLE); o.Has("rid") {
				t.Fatalf("classic error reply carries rid: %s", o.Raw)
			}
			bc.Ping() // nothing was delivered to bob

			flaky.failAppend.Store(false)
			an.Call(6, `{"msgid":6,"to":%d,"msg":"accepted","cmid":"r1"}`, bob.id).Check(t, "seq", 1)
			bc.Expect(6, "id", alice.id, "msg", "accepted")
			cc.Sendf(`{"msgid":6,"id":%d,"name":"carol","to":%d,"msg":"accepted too"}`, carol.id, bob.id)
			bc.Expect(6, "id", carol.id, "msg", "accepted too")
			an.Call(14, `{"msgid":14,"to":%d,"after":0}`, bob.id).Check(t, "last", 1)
		})
	}
}

// TestCursorPutBack: delivered cursors the store refuses to save are put
// back and saved later, so a classic login after the store came back does
// not get as offlinemsg what its last session was already sent.
func TestCursorPutBack(t *testing.T) {
	ts, flaky := startFlaky(t, false, nil)
	alice, bob := newUser(t, ts, "alice"), newUser(t, ts, "bob")
	an, _ := alice.native(t, ts)
	bc, _ := bob.classic(t, ts)

	// Every save from here fails (the periodic one or the logout's), so
	// bob's moves are refused at least once whenever they are tried.
	flaky.failCursors.Store(true)
	for _, text := range []string{"one", "two"} {
		an.Call(6, `{"msgid":6,"to":%d,"msg":%q,"cmid":%q}`, bob.id, text, text)
		bc.Expect(6, "id", alice.id, "msg", text)
	}
	bc.Sendf(`{"msgid":3,"id":%d}`, bob.id) // logout saves the cursors: refused
	bc.Ping()
	testenv.WaitFor(t, readTimeout, "bob's delivered cursor refused by the store", func() bool {
		return flaky.refusedFor(bob.id)
	})

	flaky.failCursors.Store(false)
	rep := bc.ClassicLogin(bob.id, bob.pw)
	if rep.Has("offlinemsg") {
		t.Fatalf("messages already sent came back as offlinemsg: the refused cursor was lost: %s", rep.Raw)
	}
}
