package postgres

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"clusterchat"
)

// appendSQL appends a batch in one statement, so in one round trip and one
// implicit transaction. Its parameters are parallel arrays, one element per
// message of the batch that is not a repeat of an earlier one in the same
// batch ($1-$8), the server time ($9), and the participants of the 1:1
// conversations ($10, $11).
//
//   - existing: messages whose (sender, cmid) is already stored: returned
//     whole, nothing stored for them.
//   - fresh: the others, numbered within their conversation (rn of n).
//   - alloc: one upsert per conversation raises last_seq by n and returns
//     it, so the batch owns seqs last_seq-n+1 .. last_seq. The convs row
//     lock is held to commit: appenders of one conversation, in any
//     process, take turns, and a rollback gives the range back (no gaps).
//     Rows are upserted in conversation order so two batches sharing
//     conversations lock them in the same order and cannot deadlock.
//     created (xmax = 0: the upsert inserted the row) marks a
//     conversation's first message.
//   - ins: the messages, in batch order so ids grow with it; it returns
//     (id, conv, seq), and Append gives each conversation's seqs to its
//     fresh messages in batch order (the order rn numbered them in).
//   - reads: each sender's last fresh message per conversation. A sender
//     has read its conversation up to it (see clusterchat.Store.Append),
//     and its read cursor moves there in this same statement.
//   - parts: cursor rows for both users of a 1:1 conversation, made with
//     its first message (1:1 cursor rows are never deleted), after that
//     conversation's lock, the sender's already at its message. Probing
//     them on every append cost two index lookups per message for nothing.
//   - locked, moved: the senders' existing cursor rows raised to reads,
//     locked first in (uid, conv) order, the order mark locks them in too:
//     locked in whatever order a join gives, an append and a server's
//     cursor save deadlocked (PostgreSQL cuts one after deadlock_timeout,
//     1 s, in which the committer and every message behind it waited). No
//     other lock follows: the convs rows are all taken before (reads
//     aggregates all of ins, which joins all of alloc). The statement's
//     sub-statements share one snapshot, so moved cannot see the rows
//     parts makes: that is why parts writes its rows' values itself. A
//     sender without a cursor row (not a member) matches none, as MarkRead.
//
// A concurrent append of the same (sender, cmid) that commits first makes
// ins fail with a unique violation; the statement is rolled back whole and
// Append runs it again, when existing finds the original.
const appendSQL = `
WITH input AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[])
		WITH ORDINALITY AS t(conv, sender, sender_name, recipient, group_id, body, ctime, cmid, ord)
), existing AS (
	-- LATERAL ... LIMIT 1 keeps this a probe of the index per message
	-- (the planner may otherwise pick a hash join over the whole table), and
	-- cmid IS NOT NULL lets it use the partial index at all.
	SELECT i.ord, m.*
	FROM input i CROSS JOIN LATERAL (
		SELECT m.id, m.conv, m.seq, m.sender, m.sender_name, m.recipient, m.group_id, m.body, m.ctime, m.time, m.cmid
		FROM messages m
		WHERE m.sender = i.sender AND m.cmid = i.cmid AND m.cmid IS NOT NULL
		LIMIT 1
	) m
	WHERE i.cmid IS NOT NULL
), fresh AS (
	SELECT i.*,
		row_number() OVER (PARTITION BY i.conv ORDER BY i.ord) AS rn,
		count(*) OVER (PARTITION BY i.conv) AS n
	FROM input i
	WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.ord = i.ord)
), alloc AS (
	INSERT INTO convs AS c (conv, last_seq)
	SELECT conv, count(*) FROM fresh GROUP BY conv ORDER BY conv COLLATE "C"
	ON CONFLICT (conv) DO UPDATE SET last_seq = c.last_seq + EXCLUDED.last_seq
	RETURNING c.conv, c.last_seq, (c.xmax = 0) AS created
), ins AS (
	INSERT INTO messages (conv, seq, sender, sender_name, recipient, group_id, body, ctime, time, cmid)
	SELECT f.conv, a.last_seq - f.n + f.rn, f.sender, f.sender_name, f.recipient, f.group_id, f.body, f.ctime, $9, f.cmid
	FROM fresh f JOIN alloc a ON a.conv = f.conv
	ORDER BY f.ord
	RETURNING id, conv, seq, sender
), reads AS (
	SELECT sender, conv, max(seq) AS seq FROM ins GROUP BY sender, conv
), parts AS (
	INSERT INTO cursors (uid, conv, delivered, read)
	SELECT p.uid, p.conv, 0, coalesce(r.seq, 0)
	FROM unnest($10::bigint[], $11::text[]) AS p(uid, conv)
		JOIN alloc a ON a.conv = p.conv AND a.created
		LEFT JOIN reads r ON r.sender = p.uid AND r.conv = p.conv
	ORDER BY p.conv COLLATE "C", p.uid
	ON CONFLICT (uid, conv) DO NOTHING
), locked AS (
	SELECT c.uid, c.conv, r.seq
	FROM cursors c JOIN reads r ON c.uid = r.sender AND c.conv = r.conv
	WHERE c.read < r.seq
	ORDER BY c.uid, c.conv
	FOR UPDATE OF c
), moved AS (
	UPDATE cursors c SET read = greatest(c.read, l.seq)
	FROM locked l
	WHERE c.uid = l.uid AND c.conv = l.conv
)
SELECT e.ord, true, e.id, e.conv, e.seq, e.sender, e.sender_name, e.recipient, e.group_id, e.body, e.ctime, e.time, e.cmid
FROM existing e
UNION ALL
SELECT 0, false, i.id, i.conv, i.seq, 0, '', 0, 0, '', '', $9, NULL
FROM ins i`

// appendOneSQL is appendSQL for a batch of one message, with scalar
// parameters ($1-$9 as appendSQL's, $10 the participants of a 1:1
// conversation): the same steps and results (the sender's cursor moved
// too) without unnest, numbering or grouping, which cost a batch of one
// about a quarter of its time.
const appendOneSQL = `
WITH existing AS (
	SELECT m.id, m.conv, m.seq, m.sender, m.sender_name, m.recipient, m.group_id, m.body, m.ctime, m.time, m.cmid
	FROM messages m
	WHERE $8::text IS NOT NULL AND m.sender = $2 AND m.cmid = $8 AND m.cmid IS NOT NULL
	LIMIT 1
), alloc AS (
	INSERT INTO convs AS c (conv, last_seq)
	SELECT $1::text, 1 WHERE NOT EXISTS (SELECT 1 FROM existing)
	ON CONFLICT (conv) DO UPDATE SET last_seq = c.last_seq + 1
	RETURNING c.conv, c.last_seq, (c.xmax = 0) AS created
), ins AS (
	INSERT INTO messages (conv, seq, sender, sender_name, recipient, group_id, body, ctime, time, cmid)
	SELECT a.conv, a.last_seq, $2, $3, $4, $5, $6, $7, $9, $8 FROM alloc a
	RETURNING id, conv, seq
), parts AS (
	INSERT INTO cursors (uid, conv, delivered, read)
	SELECT p.uid, a.conv, 0, CASE WHEN p.uid = $2 THEN a.last_seq ELSE 0 END
	FROM unnest($10::bigint[]) AS p(uid) JOIN alloc a ON a.created
	ORDER BY p.uid
	ON CONFLICT (uid, conv) DO NOTHING
), moved AS (
	UPDATE cursors c SET read = i.seq
	FROM ins i
	WHERE c.uid = $2 AND c.conv = i.conv AND c.read < i.seq
)
SELECT 1::bigint, true, e.id, e.conv, e.seq, e.sender, e.sender_name, e.recipient, e.group_id, e.body, e.ctime, e.time, e.cmid
FROM existing e
UNION ALL
SELECT 0, false, i.id, i.conv, i.seq, 0, '', 0, 0, '', '', $9, NULL
FROM ins i`

// Append commits msgs in one statement; see clusterchat.Store. msgs are
// changed only when it succeeds.
func (s *Store) Append(ctx context.Context, msgs []*clusterchat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	// A message repeating the (From, CMID) of an earlier one in the batch
	// is a duplicate of it: only the first goes to the database.
	type key struct {
		from int64
		cmid string
	}
	var firstOf map[key]int
	dupOf := make([]int, len(msgs)) // index of the earlier original, or -1
	prim := make([]int, 0, len(msgs))
	for i, m := range msgs {
		dupOf[i] = -1
		if m.CMID != "" {
			if firstOf == nil {
				firstOf = make(map[key]int)
			}
			k := key{m.From, m.CMID}
			if j, ok := firstOf[k]; ok {
				dupOf[i] = j
				continue
			}
			firstOf[k] = i
		}
		prim = append(prim, i)
	}

	n := len(prim)
	var (
		convs      = make([]string, n)
		senders    = make([]int64, n)
		names      = make([]string, n)
		recipients = make([]int64, n)
		groups     = make([]int64, n)
		bodies     = make([]string, n)
		ctimes     = make([]string, n)
		cmids      = make([]*string, n)
		partUIDs   []int64
		partConvs  []string
	)
	type part struct {
		conv string
		uid  int64
	}
	var parts []part
	for j, i := range prim {
		m := msgs[i]
		convs[j], senders[j], names[j] = m.Conv, m.From, m.FromName
		recipients[j], groups[j], bodies[j], ctimes[j] = m.To, m.GroupID, m.Body, m.CTime
		if m.CMID != "" {
			cmids[j] = &m.CMID
		}
		if !m.IsGroup() {
			a, b, _, ok := clusterchat.ParseConv(m.Conv)
			if !ok {
				a, b = m.From, m.To
			}
			parts = append(parts, part{m.Conv, a}, part{m.Conv, b})
		}
	}
	slices.SortFunc(parts, func(x, y part) int {
		return cmp.Or(cmp.Compare(x.conv, y.conv), cmp.Compare(x.uid, y.uid))
	})
	parts = slices.Compact(parts)
	for _, p := range parts {
		partUIDs = append(partUIDs, p.uid)
		partConvs = append(partConvs, p.conv)
	}

	type result struct {
		dup  bool
		orig clusterchat.Message
	}
	var (
		results []result
		now     time.Time
	)
	attempt := func() error {
		now = time.Now().UTC().Truncate(time.Millisecond)
		results = make([]result, n)
		var (
			rows pgx.Rows
			err  error
		)
		if n == 1 {
			// The common case at low load: scalars, no unnest, no windows.
			rows, err = s.pool.Query(ctx, appendOneSQL, convs[0], senders[0], names[0], recipients[0], groups[0],
				bodies[0], ctimes[0], cmids[0], now, partUIDs)
		} else {
			rows, err = s.pool.Query(ctx, appendSQL, convs, senders, names, recipients, groups, bodies, ctimes, cmids,
				now, partUIDs, partConvs)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		got := 0
		var fresh map[string][]result // by conversation, from ins
		for rows.Next() {
			var (
				ord  int64
				r    result
				cmid *string
			)
			m := &r.orig
			if err := rows.Scan(&ord, &r.dup, &m.ID, &m.Conv, &m.Seq, &m.From, &m.FromName, &m.To, &m.GroupID,
				&m.Body, &m.CTime, &m.Time, &cmid); err != nil {
				return err
			}
			got++
			if !r.dup {
				if fresh == nil {
					fresh = make(map[string][]result)
				}
				fresh[m.Conv] = append(fresh[m.Conv], r)
				continue
			}
			if cmid != nil {
				m.CMID = *cmid
			}
			results[ord-1] = r
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if got != n {
			return clusterchat.Errorf(clusterchat.EINTERNAL, "append: %d results for %d messages", got, n)
		}
		for _, rs := range fresh {
			slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.orig.Seq, b.orig.Seq) })
		}
		for j := range results {
			if results[j].dup {
				continue
			}
			conv := convs[j]
			rs := fresh[conv]
			if len(rs) == 0 {
				return clusterchat.Errorf(clusterchat.EINTERNAL, "append: no seq for a message of %s", conv)
			}
			results[j], fresh[conv] = rs[0], rs[1:]
		}
		return nil
	}
	var err error
	for range maxAttempts {
		err = s.run(ctx, "append", false, attempt)
		// A unique violation is a (sender, cmid) committed by a concurrent
		// append (a client retrying through another server) after our
		// snapshot: run again, and find it as a duplicate.
		if pgCode(err) != codeUniqueViolation || ctx.Err() != nil {
			break
		}
	}
	if pgCode(err) == codeUniqueViolation {
		return &clusterchat.Error{Code: clusterchat.EUNAVAILABLE, Transient: true,
			Message: fmt.Sprintf("append: lost %d races for a client message id, retry", maxAttempts)}
	}
	if err != nil {
		return err
	}
	if k := slices.IndexFunc(results, func(r result) bool { return r.dup }); k >= 0 {
		// The original may be committed on this server only: an attempt
		// whose commit was waiting for a synchronous standby when its
		// connection broke (pgx cancels the statement) is committed
		// locally and visible, yet not replicated, and a failover now would
		// lose it. The statement above wrote nothing for it, so its commit
		// waited for nothing. A transaction that writes (a no-op update of
		// the conversation's row: WAL and a transaction id) waits at commit
		// until the standby has its WAL, which comes after the original's:
		// once it returns, the original is as safe as a fresh commit. (It
		// returns at once without synchronous replication.)
		conv := results[k].orig.Conv
		err := s.run(ctx, "append", true, func() error {
			_, err := s.pool.Exec(ctx, "UPDATE convs SET last_seq = last_seq WHERE conv = $1", conv)
			return err
		})
		if err != nil {
			return err
		}
	}

	for j, i := range prim {
		m, r := msgs[i], results[j]
		if r.dup {
			*m = r.orig
			m.Time = m.Time.UTC()
			m.Dup = true
			continue
		}
		m.ID, m.Seq, m.Time, m.Dup = r.orig.ID, r.orig.Seq, now, false
	}
	for i, j := range dupOf {
		if j >= 0 {
			*msgs[i] = *msgs[j]
			msgs[i].Dup = true
		}
	}
	return nil
}

// messageCols are the columns scanMessages reads, in its order.
const messageCols = `id, conv, seq, sender, sender_name, recipient, group_id, body, ctime, time, cmid`

// scanMessages reads rows of messageCols.
func scanMessages(rows pgx.Rows) ([]*clusterchat.Message, error) {
	defer rows.Close()
	var out []*clusterchat.Message
	for rows.Next() {
		m := new(clusterchat.Message)
		var cmid *string
		if err := rows.Scan(&m.ID, &m.Conv, &m.Seq, &m.From, &m.FromName, &m.To, &m.GroupID,
			&m.Body, &m.CTime, &m.Time, &cmid); err != nil {
			return nil, err
		}
		m.Time = m.Time.UTC()
		if cmid != nil {
			m.CMID = *cmid
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// query runs an idempotent query returning messageCols.
func (s *Store) query(ctx context.Context, op, sql string, args ...any) ([]*clusterchat.Message, error) {
	var out []*clusterchat.Message
	err := s.run(ctx, op, true, func() error {
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = scanMessages(rows)
		return err
	})
	return out, err
}

// Since returns up to limit messages of conv with Seq > after, ascending.
func (s *Store) Since(ctx context.Context, conv string, after int64, limit int) ([]*clusterchat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.query(ctx, "since",
		`SELECT `+messageCols+` FROM messages WHERE conv = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		conv, after, limit)
}

// Before returns the newest messages of conv with Seq < before (before <= 0:
// from the end), at most limit, ascending.
func (s *Store) Before(ctx context.Context, conv string, before int64, limit int) ([]*clusterchat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	return s.query(ctx, "before",
		`SELECT `+messageCols+` FROM (
			SELECT `+messageCols+` FROM messages WHERE conv = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3
		) m ORDER BY seq`,
		conv, before, limit)
}

// Convs returns uid's state in every conversation it takes part in, by
// conversation name. Its cursor rows are exactly those conversations: one
// per group joined, one per 1:1 conversation with a message.
func (s *Store) Convs(ctx context.Context, uid int64) ([]clusterchat.ConvState, error) {
	var out []clusterchat.ConvState
	err := s.run(ctx, "convs", true, func() error {
		rows, err := s.pool.Query(ctx, `
SELECT c.conv, coalesce(v.last_seq, 0), c.delivered, c.read
FROM cursors c LEFT JOIN convs v ON v.conv = c.conv
WHERE c.uid = $1
ORDER BY c.conv`, uid)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (clusterchat.ConvState, error) {
			var cs clusterchat.ConvState
			err := r.Scan(&cs.Conv, &cs.LastSeq, &cs.Delivered, &cs.Read)
			return cs, err
		})
		return err
	})
	return out, err
}

// LastSeq returns conv's last seq from its convs row (raised in the
// transaction that appends), 0 without one.
func (s *Store) LastSeq(ctx context.Context, conv string) (int64, error) {
	var seq int64
	err := s.run(ctx, "last seq", true, func() error {
		return s.pool.QueryRow(ctx, `SELECT coalesce((SELECT last_seq FROM convs WHERE conv = $1), 0)`, conv).Scan(&seq)
	})
	return seq, err
}

// Undelivered returns up to limit messages not sent by uid above its
// delivered cursors, ordered by id.
func (s *Store) Undelivered(ctx context.Context, uid int64, limit int) ([]*clusterchat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.query(ctx, "undelivered", `
SELECT m.id, m.conv, m.seq, m.sender, m.sender_name, m.recipient, m.group_id, m.body, m.ctime, m.time, m.cmid
FROM cursors c JOIN messages m ON m.conv = c.conv AND m.seq > c.delivered
WHERE c.uid = $1 AND m.sender <> $1
ORDER BY m.id
LIMIT $2`, uid, limit)
}

// MarkDelivered raises delivered cursors to max(current, Seq).
func (s *Store) MarkDelivered(ctx context.Context, cursors []clusterchat.Cursor) error {
	return s.mark(ctx, "mark delivered", cursors, markSQL("c.delivered < v.seq", "delivered = greatest(c.delivered, l.seq)"))
}

// MarkRead raises read cursors, and delivered ones with them, to
// max(current, Seq).
func (s *Store) MarkRead(ctx context.Context, cursors []clusterchat.Cursor) error {
	return s.mark(ctx, "mark read", cursors, markSQL("c.read < v.seq OR c.delivered < v.seq",
		"read = greatest(c.read, l.seq), delivered = greatest(c.delivered, l.seq)"))
}

// markSQL is mark's statement: the cursor rows ($1 uids, $2 convs, $3 seqs)
// where moves holds are locked in (uid, conv) order, then set.
func markSQL(moves, set string) string {
	return `
WITH locked AS (
	SELECT c.uid, c.conv, v.seq
	FROM cursors c JOIN unnest($1::bigint[], $2::text[], $3::bigint[]) AS v(uid, conv, seq)
		ON c.uid = v.uid AND c.conv = v.conv
	WHERE ` + moves + `
	ORDER BY c.uid, c.conv
	FOR UPDATE OF c
)
UPDATE cursors c SET ` + set + `
FROM locked l WHERE c.uid = l.uid AND c.conv = l.conv`
}

// mark runs a cursor update over cursors folded to one row per (user,
// conversation) with the highest seq: UPDATE ... FROM applies one source
// row per target row, so duplicates must not reach it. Cursors of
// conversations the user is not part of match no row and are ignored.
// The rows are locked first in (uid, conv) order (the locked CTE: ORDER BY
// comes before FOR UPDATE), as Append locks its senders' cursors: two
// statements that lock in one order cannot deadlock, where an UPDATE's
// join locks in the order its plan happens to produce
// (TestAppendAndMarksDoNotDeadlock).
func (s *Store) mark(ctx context.Context, op string, cursors []clusterchat.Cursor, sql string) error {
	if len(cursors) == 0 {
		return nil
	}
	cs := slices.Clone(cursors)
	slices.SortFunc(cs, func(a, b clusterchat.Cursor) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Conv, b.Conv), cmp.Compare(b.Seq, a.Seq))
	})
	cs = slices.CompactFunc(cs, func(a, b clusterchat.Cursor) bool { return a.User == b.User && a.Conv == b.Conv })
	uids := make([]int64, len(cs))
	convs := make([]string, len(cs))
	seqs := make([]int64, len(cs))
	for i, c := range cs {
		uids[i], convs[i], seqs[i] = c.User, c.Conv, c.Seq
	}
	return s.run(ctx, op, true, func() error {
		_, err := s.pool.Exec(ctx, sql, uids, convs, seqs)
		return err
	})
}
