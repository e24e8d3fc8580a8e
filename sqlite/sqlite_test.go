package sqlite_test

import (
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"clusterchat"
	"clusterchat/sqlite"
	"clusterchat/storetest"
)

// mustOpen opens a store on path, failing the test on error.
func mustOpen(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(path, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterchat.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "chat.db"))
	})
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) clusterchat.Store {
		return mustOpen(b, filepath.Join(b.TempDir(), "chat.db"))
	})
}

// TestReopen runs the shared reopen checks on one file.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.db")
	storetest.Reopen(t, func(t *testing.T) clusterchat.Store { return mustOpen(t, path) })
}

// TestMigrateFromPrevious writes a database with the schema as it was before
// the social migration (only the migrations before it applied), then opens
// it: everything must be there and the new calls must work.
func TestMigrateFromPrevious(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	prev := sqlite.SocialMigration - 1
	for i, m := range sqlite.Migrations[:prev] {
		if _, err := db.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	for _, q := range []string{
		fmt.Sprintf("PRAGMA user_version = %d", prev),
		`INSERT INTO users (id, name, pass_hash) VALUES (1, 'alice', 'ha'), (2, 'bob', 'hb'), (3, 'carol', 'hc')`,
		`INSERT INTO friends (user_id, friend_id) VALUES (1, 2), (2, 1)`,
		`INSERT INTO chat_groups (id, name, descr, creator) VALUES (1, 'g', 'desc', 1)`,
		`INSERT INTO members (group_id, user_id, role) VALUES (1, 1, 'creator'), (1, 2, 'normal')`,
		`INSERT INTO messages (conv, seq, id, sender, sender_name, recipient, group_id, body, ctime, ts, cmid) VALUES
			('g:1', 1, 1, 1, 'alice', 0, 1, 'hi', 't', 1, ''),
			('g:1', 2, 2, 2, 'bob', 0, 1, 'yo', 't', 2, ''),
			('d:1:2', 1, 3, 1, 'alice', 2, 0, 'dm', 't', 3, '')`,
		`INSERT INTO cursors (user_id, conv, delivered, read) VALUES (1, 'g:1', 0, 0), (1, 'd:1:2', 0, 0), (2, 'g:1', 1, 1), (2, 'd:1:2', 0, 0)`,
		`UPDATE meta SET last_msg_id = 3`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	s := mustOpen(t, path)
	defer s.Close()
	storetest.CheckMigrated(t, s)
}

// TestDiskFull: a full disk refuses appends with EUNAVAILABLE and loses
// nothing acknowledged; the store works again once there is room.
func TestDiskFull(t *testing.T) {
	storetest.DiskFull(t, func(dir string) (clusterchat.Store, error) {
		return sqlite.Open(filepath.Join(dir, "chat.db"), nil)
	})
}
