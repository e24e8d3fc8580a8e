package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"clusterchat"
)

// inTx runs fn in a transaction, again when it failed in a way that left
// nothing behind (see run).
func (s *Store) inTx(ctx context.Context, op string, fn func(tx pgx.Tx) error) error {
	return s.run(ctx, op, false, func() error { return pgx.BeginFunc(ctx, s.pool, fn) })
}

// exec runs one statement and fails with ENOTFOUND (msg) if it touched no
// row.
func (s *Store) exec(ctx context.Context, op, msg string, q string, args ...any) error {
	var tag pgconn.CommandTag
	err := s.run(ctx, op, false, func() (err error) {
		tag, err = s.pool.Exec(ctx, q, args...)
		return err
	})
	if err == nil && tag.RowsAffected() == 0 {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "%s", msg)
	}
	return err
}

// queryBool runs a one-boolean query.
func (s *Store) queryBool(ctx context.Context, op, q string, args ...any) (bool, error) {
	var ok bool
	err := s.run(ctx, op, true, func() error { return s.pool.QueryRow(ctx, q, args...).Scan(&ok) })
	return ok, err
}

// queryUsers runs a query of (id, name) rows.
func (s *Store) queryUsers(ctx context.Context, op, q string, args ...any) ([]clusterchat.User, error) {
	var out []clusterchat.User
	err := s.run(ctx, op, true, func() error {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (clusterchat.User, error) {
			var u clusterchat.User
			err := r.Scan(&u.ID, &u.Name)
			return u, err
		})
		return err
	})
	return out, err
}

// lockUsers locks the rows of two users for the transaction, so that the
// calls about one pair (requests, blocks) take turns across processes. It
// returns ENOTFOUND if either is missing.
func lockUsers(ctx context.Context, tx pgx.Tx, a, b int64) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT id FROM users WHERE id IN ($1, $2) ORDER BY id FOR UPDATE) u`, a, b).Scan(&n); err != nil {
		return err
	}
	if n != 2 {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no such user (%d or %d)", a, b)
	}
	return nil
}

// AreFriends tells whether a and b are friends.
func (s *Store) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	return s.queryBool(ctx, "are friends", `SELECT EXISTS (SELECT 1 FROM friends WHERE a = $1 AND b = $2)`, a, b)
}

// RequestFriend stores a friend request, or makes friends when the other
// asked first; see clusterchat.Store.
func (s *Store) RequestFriend(ctx context.Context, from, to int64) (bool, error) {
	if from == to {
		return false, clusterchat.Errorf(clusterchat.EINVALID, "a user cannot befriend itself")
	}
	var friends bool
	err := s.inTx(ctx, "request friend", func(tx pgx.Tx) error {
		friends = false
		if err := lockUsers(ctx, tx, from, to); err != nil {
			return err
		}
		var blocked, already, asked, mine bool
		err := tx.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM blocks WHERE (uid = $1 AND target = $2) OR (uid = $2 AND target = $1)),
			EXISTS (SELECT 1 FROM friends WHERE a = $1 AND b = $2),
			EXISTS (SELECT 1 FROM friend_requests WHERE a = $2 AND b = $1),
			EXISTS (SELECT 1 FROM friend_requests WHERE a = $1 AND b = $2)`, from, to).Scan(&blocked, &already, &asked, &mine)
		if err != nil {
			return err
		}
		accept, err := clusterchat.FriendRequestOutcome(from, to, blocked, already, asked, mine)
		if err != nil {
			return err
		}
		if accept {
			friends = true
			return befriend(ctx, tx, from, to) // to asked from first
		}
		_, err = tx.Exec(ctx, `INSERT INTO friend_requests (a, b, time) VALUES ($1, $2, $3)`, from, to, time.Now())
		return err
	})
	return friends, err
}

// befriend turns the request of from to `to` into a friendship.
func befriend(ctx context.Context, tx pgx.Tx, to, from int64) error {
	tag, err := tx.Exec(ctx, `DELETE FROM friend_requests WHERE a = $1 AND b = $2`, from, to)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no friend request from %d", from)
	}
	_, err = tx.Exec(ctx, `INSERT INTO friends (a, b) VALUES ($1, $2), ($2, $1) ON CONFLICT DO NOTHING`, from, to)
	return err
}

// AcceptFriend makes uid and from friends if from asked.
func (s *Store) AcceptFriend(ctx context.Context, uid, from int64) error {
	return s.inTx(ctx, "accept friend", func(tx pgx.Tx) error { return befriend(ctx, tx, uid, from) })
}

// DeleteFriendRequest drops the request of from to `to`.
func (s *Store) DeleteFriendRequest(ctx context.Context, from, to int64) error {
	return s.exec(ctx, "delete friend request", "no such friend request",
		`DELETE FROM friend_requests WHERE a = $1 AND b = $2`, from, to)
}

// FriendRequests returns the requests uid sent or received.
func (s *Store) FriendRequests(ctx context.Context, uid int64) ([]clusterchat.FriendRequest, error) {
	var out []clusterchat.FriendRequest
	err := s.run(ctx, "friend requests", true, func() error {
		rows, err := s.pool.Query(ctx, `SELECT r.a, fa.name, r.b, fb.name, r.time
			FROM friend_requests r JOIN users fa ON fa.id = r.a JOIN users fb ON fb.id = r.b
			WHERE r.a = $1 OR r.b = $1 ORDER BY r.a, r.b`, uid)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (clusterchat.FriendRequest, error) {
			var f clusterchat.FriendRequest
			err := r.Scan(&f.From, &f.FromName, &f.To, &f.ToName, &f.Time)
			return f, err
		})
		return err
	})
	return out, err
}

// RemoveFriend ends a friendship both ways.
func (s *Store) RemoveFriend(ctx context.Context, a, b int64) error {
	return s.exec(ctx, "remove friend", "not friends",
		`DELETE FROM friends WHERE (a = $1 AND b = $2) OR (a = $2 AND b = $1)`, a, b)
}

// Block makes uid block target, ending their friendship and requests.
func (s *Store) Block(ctx context.Context, uid, target int64) error {
	if uid == target {
		return clusterchat.Errorf(clusterchat.EINVALID, "a user cannot block itself")
	}
	return s.inTx(ctx, "block", func(tx pgx.Tx) error {
		if err := lockUsers(ctx, tx, uid, target); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO blocks (uid, target) VALUES ($1, $2) ON CONFLICT DO NOTHING`, uid, target)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return clusterchat.Errorf(clusterchat.EEXISTS, "already blocked")
		}
		for _, q := range []string{
			`DELETE FROM friends WHERE (a = $1 AND b = $2) OR (a = $2 AND b = $1)`,
			`DELETE FROM friend_requests WHERE (a = $1 AND b = $2) OR (a = $2 AND b = $1)`,
		} {
			if _, err := tx.Exec(ctx, q, uid, target); err != nil {
				return err
			}
		}
		return nil
	})
}

// Unblock undoes Block.
func (s *Store) Unblock(ctx context.Context, uid, target int64) error {
	return s.exec(ctx, "unblock", "not blocked", `DELETE FROM blocks WHERE uid = $1 AND target = $2`, uid, target)
}

// Blocked returns the users uid blocks, ordered by id.
func (s *Store) Blocked(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	return s.queryUsers(ctx, "blocked", `SELECT u.id, u.name FROM blocks b JOIN users u ON u.id = b.target WHERE b.uid = $1 ORDER BY u.id`, uid)
}

// IsBlocked tells whether blocker blocks target.
func (s *Store) IsBlocked(ctx context.Context, blocker, target int64) (bool, error) {
	return s.queryBool(ctx, "is blocked", `SELECT EXISTS (SELECT 1 FROM blocks WHERE uid = $1 AND target = $2)`, blocker, target)
}

// UpdateGroup sets a group's name, description and settings.
func (s *Store) UpdateGroup(ctx context.Context, g clusterchat.Group) error {
	if g.History == "" {
		g.History = clusterchat.HistoryJoined
	}
	err := s.exec(ctx, "update group", "no such group",
		`UPDATE groups SET name = $2, descr = $3, private = $4, history = $5 WHERE id = $1`, g.ID, g.Name, g.Desc, g.Private, g.History)
	if pgCode(err) == codeUniqueViolation {
		return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", g.Name)
	}
	return err
}

// DeleteGroup deletes a group with its memberships, pending rows and the
// members' cursors, in one transaction.
func (s *Store) DeleteGroup(ctx context.Context, gid int64) error {
	return s.inTx(ctx, "delete group", func(tx pgx.Tx) error {
		for _, q := range []string{
			`DELETE FROM members WHERE gid = $1`,
			`DELETE FROM group_pending WHERE gid = $1`,
			`DELETE FROM departed WHERE gid = $1`,
			`DELETE FROM cursors WHERE conv = 'g:' || $1::bigint`,
		} {
			if _, err := tx.Exec(ctx, q, gid); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `DELETE FROM groups WHERE id = $1`, gid)
		if err == nil && tag.RowsAffected() == 0 {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		return err
	})
}

// SetRole sets a member's role.
func (s *Store) SetRole(ctx context.Context, gid, uid int64, role string) error {
	return s.exec(ctx, "set role", "not a member", `UPDATE members SET role = $3 WHERE gid = $1 AND uid = $2`, gid, uid, role)
}

// LeaveGroup ends a membership, keeping what the former member may read.
func (s *Store) LeaveGroup(ctx context.Context, gid, uid int64) error {
	return s.inTx(ctx, "leave group", func(tx pgx.Tx) error {
		var joined int64
		err := tx.QueryRow(ctx, `DELETE FROM members WHERE gid = $1 AND uid = $2 RETURNING joined_seq`, gid, uid).Scan(&joined)
		if errors.Is(err, pgx.ErrNoRows) {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "user %d is not a member of group %d", uid, gid)
		}
		if err != nil {
			return err
		}
		conv := clusterchat.GroupConv(gid)
		if _, err := tx.Exec(ctx, `INSERT INTO departed (gid, uid, joined_seq, left_seq)
			VALUES ($1, $2, $3, coalesce((SELECT last_seq FROM convs WHERE conv = $4), 0))
			ON CONFLICT (gid, uid) DO UPDATE SET joined_seq = EXCLUDED.joined_seq, left_seq = EXCLUDED.left_seq`,
			gid, uid, joined, conv); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM cursors WHERE uid = $1 AND conv = $2`, uid, conv)
		return err
	})
}

// Access returns what uid may read of gid.
func (s *Store) Access(ctx context.Context, gid, uid int64) (clusterchat.Access, error) {
	var (
		a            clusterchat.Access
		history      string
		role         *string
		joined       *int64
		dJoin, dLeft *int64
	)
	err := s.run(ctx, "access", true, func() error {
		return s.pool.QueryRow(ctx, `SELECT g.history, m.role, m.joined_seq, d.joined_seq, d.left_seq
			FROM groups g
			LEFT JOIN members m ON m.gid = g.id AND m.uid = $2
			LEFT JOIN departed d ON d.gid = g.id AND d.uid = $2
			WHERE g.id = $1`, gid, uid).Scan(&history, &role, &joined, &dJoin, &dLeft)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return a, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	if err != nil {
		return a, err
	}
	switch {
	case role != nil:
		a.Role, a.After = *role, *joined
	case dLeft != nil:
		a.Former, a.After, a.Until = true, *dJoin, *dLeft
	}
	if history == clusterchat.HistoryAll {
		a.After = 0
	}
	return a, nil
}

// AddPending records an invitation or a join request.
func (s *Store) AddPending(ctx context.Context, p clusterchat.Pending) error {
	var inserted, member bool
	err := s.run(ctx, "add pending", false, func() error {
		return s.pool.QueryRow(ctx, `
WITH mem AS (
	SELECT EXISTS (SELECT 1 FROM members WHERE gid = $1 AND uid = $2) AS yes
), ins AS (
	INSERT INTO group_pending (gid, uid, kind, by_uid, time)
	SELECT $1, $2, $3, $4, $5 FROM mem WHERE NOT mem.yes
	ON CONFLICT (gid, uid) DO NOTHING
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM ins), (SELECT yes FROM mem)`, p.GroupID, p.UserID, p.Kind, p.By, time.Now()).Scan(&inserted, &member)
	})
	switch {
	case pgCode(err) == codeForeignKeyViolation:
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d or no user %d", p.GroupID, p.UserID)
	case err != nil:
		return err
	case member:
		return clusterchat.Errorf(clusterchat.EEXISTS, "user %d is a member of group %d", p.UserID, p.GroupID)
	case !inserted:
		return clusterchat.Errorf(clusterchat.EEXISTS, "user %d already has something pending for group %d", p.UserID, p.GroupID)
	}
	return nil
}

// DeletePending drops a pending invitation or request.
func (s *Store) DeletePending(ctx context.Context, gid, uid int64) error {
	return s.exec(ctx, "delete pending", "nothing pending", `DELETE FROM group_pending WHERE gid = $1 AND uid = $2`, gid, uid)
}

const pendingQuery = `SELECT p.gid, g.name, p.uid, u.name, p.kind, p.by_uid, p.time
	FROM group_pending p JOIN groups g ON g.id = p.gid JOIN users u ON u.id = p.uid `

// GroupPending returns a group's pending invitations and requests.
func (s *Store) GroupPending(ctx context.Context, gid int64) ([]clusterchat.Pending, error) {
	return s.queryPending(ctx, pendingQuery+`WHERE p.gid = $1 ORDER BY p.uid`, gid)
}

// UserPending returns a user's pending invitations and requests.
func (s *Store) UserPending(ctx context.Context, uid int64) ([]clusterchat.Pending, error) {
	return s.queryPending(ctx, pendingQuery+`WHERE p.uid = $1 ORDER BY p.gid`, uid)
}

func (s *Store) queryPending(ctx context.Context, q string, id int64) ([]clusterchat.Pending, error) {
	var out []clusterchat.Pending
	err := s.run(ctx, "pending", true, func() error {
		rows, err := s.pool.Query(ctx, q, id)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (clusterchat.Pending, error) {
			var p clusterchat.Pending
			err := r.Scan(&p.GroupID, &p.GroupName, &p.UserID, &p.UserName, &p.Kind, &p.By, &p.Time)
			return p, err
		})
		return err
	})
	return out, err
}

// SearchUsers returns users by name prefix, bytewise (COLLATE "C"), paged
// by name.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]clusterchat.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	return s.queryUsers(ctx, "search users", `SELECT id, name FROM users
		WHERE starts_with(name, $1) AND name COLLATE "C" > $2
		ORDER BY name COLLATE "C" LIMIT $3`, prefix, after, limit)
}

// SetUserName renames a user.
func (s *Store) SetUserName(ctx context.Context, uid int64, name string) error {
	err := s.exec(ctx, "set user name", "no such user", `UPDATE users SET name = $2 WHERE id = $1`, uid, name)
	if pgCode(err) == codeUniqueViolation {
		return clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
	}
	return err
}
