package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"clusterchat"
	"clusterchat/internal/testenv"
	"clusterchat/postgres"
	"clusterchat/storetest"
)

// TestMain stops the shared PostgreSQL server that the tests start on
// first use.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopPostgres()
	os.Exit(code)
}

// mustOpen opens a Store on dsn and closes it when the test ends.
func mustOpen(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterchat.Store {
		return mustOpen(t, testenv.StartPostgres(t))
	})
}

// TestReopen runs the shared reopen checks on one database: a new pool on
// the same DSN, as a restarted server would open.
func TestReopen(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	storetest.Reopen(t, func(t *testing.T) clusterchat.Store { return mustOpen(t, dsn) })
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) clusterchat.Store {
		return mustOpen(b, testenv.StartPostgres(b))
	})
}

// BenchmarkAppendParallel measures single-message appends from 4 Stores
// (as 4 servers would) sharing one database, 4 x GOMAXPROCS goroutines in
// all. conv=same: every goroutine appends to one group, so appends take
// turns on its convs row lock, each holding it through its commit's fsync:
// the ceiling is one commit per fsync, which is why the server batches
// (group commit) before calling Append. conv=own: a conversation per
// goroutine, where PostgreSQL's WAL group commit lets commits share fsyncs.
func BenchmarkAppendParallel(b *testing.B) {
	for _, same := range []bool{true, false} {
		name := "conv=own"
		if same {
			name = "conv=same"
		}
		b.Run(name, func(b *testing.B) {
			dsn := testenv.StartPostgres(b)
			stores := make([]*postgres.Store, 4)
			for i := range stores {
				stores[i] = mustOpen(b, dsn)
			}
			c := context.Background()
			uid, err := stores[0].CreateUser(c, "bench", "x")
			if err != nil {
				b.Fatal(err)
			}
			var (
				mu sync.Mutex
				n  int64
			)
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				n++
				s, gid := stores[n%int64(len(stores))], n
				mu.Unlock()
				if same {
					gid = 1
				}
				for pb.Next() {
					m := &clusterchat.Message{Conv: clusterchat.GroupConv(gid), From: uid, FromName: "bench", GroupID: gid, Body: "hello, this is a small message"}
					if err := s.Append(c, []*clusterchat.Message{m}); err != nil {
						b.Errorf("Append: %v", err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkCommitBaseline is the floor the Append numbers stand on: a bare
// one-row INSERT in its own commit, on the same server and disk.
func BenchmarkCommitBaseline(b *testing.B) {
	pool, err := pgxpool.New(context.Background(), testenv.StartPostgres(b))
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	c := context.Background()
	if _, err := pool.Exec(c, "CREATE TABLE t (a bigint PRIMARY KEY, b text)"); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if _, err := pool.Exec(c, "INSERT INTO t VALUES ($1, $2)", i, "hello, this is a small message"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenConcurrently starts several servers on one empty database at once:
// the migrations must run once, the others waiting on the advisory lock.
func TestOpenConcurrently(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			s, err := postgres.Open(context.Background(), dsn, slog.New(slog.DiscardHandler))
			if err == nil {
				_, err = s.CreateUser(context.Background(), "u"+strconv.FormatInt(time.Now().UnixNano(), 36), "x")
				s.Close()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
}

// TestAppendSeveralServers appends to the same conversations from several
// Stores at once, as the servers of a cluster do, with clients retrying the
// same cmid through different servers. Every conversation must get seqs
// 1..n exactly once, and every cmid must be stored once, all its appends
// returning the same message.
func TestAppendSeveralServers(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	const servers, workers, rounds = 3, 4, 20
	stores := make([]*postgres.Store, servers)
	for i := range stores {
		stores[i] = mustOpen(t, dsn)
	}
	c := context.Background()
	a, err := stores[0].CreateUser(c, "a", "x")
	if err != nil {
		t.Fatal(err)
	}
	b, err := stores[0].CreateUser(c, "b", "x")
	if err != nil {
		t.Fatal(err)
	}
	gid, err := stores[0].CreateGroup(c, a, "g", "")
	if err != nil {
		t.Fatal(err)
	}
	g, d := clusterchat.GroupConv(gid), clusterchat.DirectConv(a, b)

	type sent struct {
		cmid string
		id   int64
		conv string
		seq  int64
	}
	var (
		mu   sync.Mutex
		all  []sent
		errs []error
		wg   sync.WaitGroup
	)
	for w := range servers * workers {
		s := stores[w%servers]
		wg.Go(func() {
			for r := range rounds {
				// Workers w and w^1 send the same cmids: a retry racing
				// the original on another server.
				cm := fmt.Sprintf("w%d-r%d", w/2, r)
				batch := []*clusterchat.Message{
					{Conv: g, From: a, FromName: "a", GroupID: gid, Body: cm, CMID: cm},
					{Conv: d, From: b, FromName: "b", To: a, Body: cm, CMID: cm},
					{Conv: g, From: b, FromName: "b", GroupID: gid, Body: cm},
				}
				err := s.Append(c, batch)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					for _, m := range batch {
						all = append(all, sent{m.CMID, m.ID, m.Conv, m.Seq})
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Errorf("Append: %v", err)
	}

	// Per cmid and sender, one message; the sender is part of the key
	// (a's and b's cmids are the same strings).
	type key struct{ cmid, conv string }
	first := map[key]sent{}
	seen := map[string]map[int64]bool{g: {}, d: {}}
	for _, m := range all {
		if m.cmid != "" {
			k := key{m.cmid, m.conv}
			if f, ok := first[k]; ok {
				if f != m {
					t.Errorf("cmid %s in %s: stored as %+v and as %+v", m.cmid, m.conv, f, m)
				}
				continue
			}
			first[k] = m
		}
		if seen[m.conv][m.seq] {
			t.Errorf("%s: seq %d assigned to two messages", m.conv, m.seq)
		}
		seen[m.conv][m.seq] = true
	}
	for conv, seqs := range seen {
		var got []int64
		for after := int64(0); ; {
			page, err := stores[1].Since(c, conv, after, clusterchat.MaxPageSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) == 0 {
				break
			}
			for _, m := range page {
				got = append(got, m.Seq)
			}
			after = page[len(page)-1].Seq
		}
		want := make([]int64, len(seqs))
		for i := range want {
			want[i] = int64(i + 1)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: stored seqs %v, want 1..%d", conv, got, len(seqs))
		}
	}
	wantN := map[string]int{g: servers * workers * rounds / 2 * 3, d: servers * workers * rounds / 2}
	for conv, n := range wantN {
		if len(seen[conv]) != n {
			t.Errorf("%s: %d messages stored, want %d", conv, len(seen[conv]), n)
		}
	}
}

// TestOutage takes the database down under a Store: calls must fail with
// EUNAVAILABLE before their deadline, and once it is back the Store works
// again without a gap in the seqs.
func TestOutage(t *testing.T) {
	pg := testenv.NewPostgres(t)
	s := mustOpen(t, pg.CreateDB(t))
	c := context.Background()
	a, err := s.CreateUser(c, "a", "x")
	if err != nil {
		t.Fatal(err)
	}
	gid, err := s.CreateGroup(c, a, "g", "")
	if err != nil {
		t.Fatal(err)
	}
	msg := func(body string) []*clusterchat.Message {
		return []*clusterchat.Message{{Conv: clusterchat.GroupConv(gid), From: a, FromName: "a", GroupID: gid, Body: body, CMID: body}}
	}
	if err := s.Append(c, msg("before")); err != nil {
		t.Fatal(err)
	}

	pg.Stop(t)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Append", func(ctx context.Context) error { return s.Append(ctx, msg("during")) }},
		{"Since", func(ctx context.Context) error {
			_, err := s.Since(ctx, clusterchat.GroupConv(gid), 0, 10)
			return err
		}},
		{"User", func(ctx context.Context) error { _, err := s.User(ctx, a); return err }},
		{"Ping", s.Ping},
	}
	for _, tc := range calls {
		ctx, cancel := context.WithTimeout(c, time.Minute)
		err := tc.call(ctx)
		if code := clusterchat.ErrorCode(err); code != clusterchat.EUNAVAILABLE {
			t.Errorf("%s with the database down: %v (errno %d), want EUNAVAILABLE", tc.name, err, code)
		}
		if !clusterchat.IsTransient(err) {
			t.Errorf("%s with the database down: %v is not transient: the committer would not ride the outage out", tc.name, err)
		}
		if ctx.Err() != nil {
			t.Errorf("%s with the database down waited for its deadline", tc.name)
		}
		cancel()
	}

	pg.Start(t)
	testenv.WaitFor(t, 30*time.Second, "store to answer again", func() bool { return s.Ping(c) == nil })
	after := msg("after")
	if err := s.Append(c, after); err != nil {
		t.Fatalf("Append after restart: %v", err)
	}
	if after[0].Seq != 2 {
		t.Errorf("Append after restart: seq %d, want 2 (nothing of the failed append kept)", after[0].Seq)
	}
}

// TestMigrateFromPrevious builds a database with the migrations before the
// social one, as the previous version left it, fills it, then opens it.
func TestMigrateFromPrevious(t *testing.T) {
	dsn := testenv.StartPostgres(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	prev := postgres.SocialMigration - 1
	stmts := append([]string{`CREATE TABLE schema_version (version int NOT NULL)`}, postgres.Migrations[:prev]...)
	stmts = append(stmts,
		fmt.Sprintf(`INSERT INTO schema_version (version) VALUES (%d)`, prev),
		`INSERT INTO users (id, name, pass_hash) VALUES (1, 'alice', 'ha'), (2, 'bob', 'hb'), (3, 'carol', 'hc')`,
		`SELECT setval(pg_get_serial_sequence('users', 'id'), 3)`,
		`INSERT INTO friends (a, b) VALUES (1, 2), (2, 1)`,
		`INSERT INTO groups (id, name, descr) VALUES (1, 'g', 'desc')`,
		`SELECT setval(pg_get_serial_sequence('groups', 'id'), 1)`,
		`INSERT INTO members (gid, uid, role) VALUES (1, 1, 'creator'), (1, 2, 'normal')`,
		`INSERT INTO convs (conv, last_seq) VALUES ('g:1', 2), ('d:1:2', 1)`,
		`INSERT INTO messages (conv, seq, id, sender, sender_name, recipient, group_id, body, ctime, time) VALUES
			('g:1', 1, 1, 1, 'alice', 0, 1, 'hi', 't', now()),
			('g:1', 2, 2, 2, 'bob', 0, 1, 'yo', 't', now()),
			('d:1:2', 1, 3, 1, 'alice', 2, 0, 'dm', 't', now())`,
		`SELECT setval('message_ids', 3)`,
		`INSERT INTO cursors (uid, conv, delivered, read) VALUES (1, 'g:1', 0, 0), (1, 'd:1:2', 0, 0), (2, 'g:1', 1, 1), (2, 'd:1:2', 0, 0)`,
	)
	for _, q := range stmts {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	pool.Close()
	storetest.CheckMigrated(t, mustOpen(t, dsn))
}

// BenchmarkAppendPairs appends as a server does under the chatbench
// pingpong scenario: batches of 20 messages, each in another of 100 1:1
// conversations that already exist, from 1 or 2 committers at once (the
// conversations split between them, as Config.Committers does).
func BenchmarkAppendPairs(b *testing.B) {
	for _, committers := range []int{1, 2} {
		b.Run("committers="+strconv.Itoa(committers), func(b *testing.B) {
			s := mustOpen(b, testenv.StartPostgres(b))
			c := context.Background()
			const pairs = 100
			var users []int64
			for i := range 2 * pairs {
				id, err := s.CreateUser(c, "u"+strconv.Itoa(i), "x")
				if err != nil {
					b.Fatal(err)
				}
				users = append(users, id)
			}
			var n atomic.Int64
			batch := func(k int) []*clusterchat.Message {
				msgs := make([]*clusterchat.Message, 20)
				for i := range msgs {
					p := (k*20 + i) % pairs
					from, to := users[2*p], users[2*p+1]
					msgs[i] = &clusterchat.Message{From: from, FromName: "u", To: to, Conv: clusterchat.DirectConv(from, to),
						Body: "hello, this is a small message", CTime: "t", CMID: "c" + strconv.FormatInt(n.Add(1), 10)}
				}
				return msgs
			}
			for k := range pairs / 20 { // every conversation exists
				if err := s.Append(c, batch(k)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / committers
			for w := range committers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range per {
						// committer w owns the batches of every committers-th slot
						if err := s.Append(c, batch(k*committers+w)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(per*committers*20)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
