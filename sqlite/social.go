package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"clusterchat"
)

// mustUser returns ENOTFOUND unless user id exists.
func mustUser(ctx context.Context, tx *sql.Tx, id int64) error {
	ok, err := exists(ctx, tx, "users", id)
	if err != nil {
		return err
	}
	if !ok {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", id)
	}
	return nil
}

// found tells whether a statement touched a row, ENOTFOUND (with msg) if not.
func found(res sql.Result, err error, msg string, args ...any) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, msg, args...)
	}
	return nil
}

// queryBool runs a one-value boolean query on the read pool.
func (s *Store) queryBool(ctx context.Context, op, q string, args ...any) (bool, error) {
	var ok bool
	if err := s.rdb.QueryRowContext(ctx, q, args...).Scan(&ok); err != nil {
		return false, s.wrap(op, err)
	}
	return ok, nil
}

// queryUsers runs a query of (id, name) rows on the read pool.
func (s *Store) queryUsers(ctx context.Context, op, q string, args ...any) ([]clusterchat.User, error) {
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer rows.Close()
	var out []clusterchat.User
	for rows.Next() {
		var u clusterchat.User
		if err := rows.Scan(&u.ID, &u.Name); err != nil {
			return nil, s.wrap(op, err)
		}
		out = append(out, u)
	}
	return out, s.wrap(op, rows.Err())
}

// AreFriends implements clusterchat.Store.
func (s *Store) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	return s.queryBool(ctx, "are friends", "SELECT EXISTS (SELECT 1 FROM friends WHERE user_id = ? AND friend_id = ?)", a, b)
}

// RequestFriend implements clusterchat.Store.
func (s *Store) RequestFriend(ctx context.Context, from, to int64) (bool, error) {
	if from == to {
		return false, clusterchat.Errorf(clusterchat.EINVALID, "a user cannot befriend itself")
	}
	var friends bool
	err := s.write(ctx, "request friend", func(tx *sql.Tx) error {
		for _, id := range []int64{from, to} {
			if err := mustUser(ctx, tx, id); err != nil {
				return err
			}
		}
		var blocked, already, asked, mine bool
		err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM blocks WHERE (user_id = ?1 AND blocked_id = ?2) OR (user_id = ?2 AND blocked_id = ?1)),
			EXISTS (SELECT 1 FROM friends WHERE user_id = ?1 AND friend_id = ?2),
			EXISTS (SELECT 1 FROM friend_requests WHERE from_id = ?2 AND to_id = ?1),
			EXISTS (SELECT 1 FROM friend_requests WHERE from_id = ?1 AND to_id = ?2)`, from, to).Scan(&blocked, &already, &asked, &mine)
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
		_, err = tx.ExecContext(ctx, "INSERT INTO friend_requests (from_id, to_id, ts) VALUES (?, ?, ?)", from, to, time.Now().UnixMilli())
		return err
	})
	return friends, err
}

// befriend turns the request of from to `to` into a friendship.
func befriend(ctx context.Context, tx *sql.Tx, to, from int64) error {
	res, err := tx.ExecContext(ctx, "DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?", from, to)
	if err := found(res, err, "no friend request from %d", from); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "INSERT OR IGNORE INTO friends (user_id, friend_id) VALUES (?, ?), (?, ?)", from, to, to, from)
	return err
}

// AcceptFriend implements clusterchat.Store.
func (s *Store) AcceptFriend(ctx context.Context, uid, from int64) error {
	return s.write(ctx, "accept friend", func(tx *sql.Tx) error { return befriend(ctx, tx, uid, from) })
}

// DeleteFriendRequest implements clusterchat.Store.
func (s *Store) DeleteFriendRequest(ctx context.Context, from, to int64) error {
	return s.write(ctx, "delete friend request", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?", from, to)
		return found(res, err, "no friend request from %d to %d", from, to)
	})
}

// FriendRequests implements clusterchat.Store.
func (s *Store) FriendRequests(ctx context.Context, uid int64) ([]clusterchat.FriendRequest, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT r.from_id, f.name, r.to_id, t.name, r.ts
		FROM friend_requests r JOIN users f ON f.id = r.from_id JOIN users t ON t.id = r.to_id
		WHERE r.from_id = ?1 OR r.to_id = ?1 ORDER BY r.from_id, r.to_id`, uid)
	if err != nil {
		return nil, s.wrap("friend requests", err)
	}
	defer rows.Close()
	var out []clusterchat.FriendRequest
	for rows.Next() {
		var (
			r  clusterchat.FriendRequest
			ts int64
		)
		if err := rows.Scan(&r.From, &r.FromName, &r.To, &r.ToName, &ts); err != nil {
			return nil, s.wrap("friend requests", err)
		}
		r.Time = time.UnixMilli(ts)
		out = append(out, r)
	}
	return out, s.wrap("friend requests", rows.Err())
}

// RemoveFriend implements clusterchat.Store.
func (s *Store) RemoveFriend(ctx context.Context, a, b int64) error {
	return s.write(ctx, "remove friend", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM friends WHERE (user_id = ?1 AND friend_id = ?2) OR (user_id = ?2 AND friend_id = ?1)", a, b)
		return found(res, err, "users %d and %d are not friends", a, b)
	})
}

// Block implements clusterchat.Store.
func (s *Store) Block(ctx context.Context, uid, target int64) error {
	if uid == target {
		return clusterchat.Errorf(clusterchat.EINVALID, "a user cannot block itself")
	}
	return s.write(ctx, "block", func(tx *sql.Tx) error {
		for _, id := range []int64{uid, target} {
			if err := mustUser(ctx, tx, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO blocks (user_id, blocked_id) VALUES (?, ?)", uid, target)
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "already blocked")
		}
		if err != nil {
			return err
		}
		for _, q := range []string{
			"DELETE FROM friends WHERE (user_id = ?1 AND friend_id = ?2) OR (user_id = ?2 AND friend_id = ?1)",
			"DELETE FROM friend_requests WHERE (from_id = ?1 AND to_id = ?2) OR (from_id = ?2 AND to_id = ?1)",
		} {
			if _, err := tx.ExecContext(ctx, q, uid, target); err != nil {
				return err
			}
		}
		return nil
	})
}

// Unblock implements clusterchat.Store.
func (s *Store) Unblock(ctx context.Context, uid, target int64) error {
	return s.write(ctx, "unblock", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM blocks WHERE user_id = ? AND blocked_id = ?", uid, target)
		return found(res, err, "user %d is not blocked", target)
	})
}

// Blocked implements clusterchat.Store.
func (s *Store) Blocked(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	return s.queryUsers(ctx, "blocked", "SELECT u.id, u.name FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.user_id = ? ORDER BY u.id", uid)
}

// IsBlocked implements clusterchat.Store.
func (s *Store) IsBlocked(ctx context.Context, blocker, target int64) (bool, error) {
	return s.queryBool(ctx, "is blocked", "SELECT EXISTS (SELECT 1 FROM blocks WHERE user_id = ? AND blocked_id = ?)", blocker, target)
}

// UpdateGroup implements clusterchat.Store.
func (s *Store) UpdateGroup(ctx context.Context, g clusterchat.Group) error {
	if g.History == "" {
		g.History = clusterchat.HistoryJoined
	}
	return s.write(ctx, "update group", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE chat_groups SET name = ?, descr = ?, private = ?, history = ? WHERE id = ?", g.Name, g.Desc, g.Private, g.History, g.ID)
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", g.Name)
		}
		return found(res, err, "no group %d", g.ID)
	})
}

// DeleteGroup implements clusterchat.Store.
func (s *Store) DeleteGroup(ctx context.Context, gid int64) error {
	return s.write(ctx, "delete group", func(tx *sql.Tx) error {
		for _, q := range []string{
			"DELETE FROM members WHERE group_id = ?",
			"DELETE FROM group_pending WHERE group_id = ?",
			"DELETE FROM departed WHERE group_id = ?",
		} {
			if _, err := tx.ExecContext(ctx, q, gid); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM cursors WHERE conv = ?", clusterchat.GroupConv(gid)); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM chat_groups WHERE id = ?", gid)
		return found(res, err, "no group %d", gid)
	})
}

// SetRole implements clusterchat.Store.
func (s *Store) SetRole(ctx context.Context, gid, uid int64, role string) error {
	return s.write(ctx, "set role", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE members SET role = ? WHERE group_id = ? AND user_id = ?", role, gid, uid)
		return found(res, err, "user %d is not a member of group %d", uid, gid)
	})
}

// LeaveGroup implements clusterchat.Store.
func (s *Store) LeaveGroup(ctx context.Context, gid, uid int64) error {
	return s.write(ctx, "leave group", func(tx *sql.Tx) error {
		var joined int64
		err := tx.QueryRowContext(ctx, "DELETE FROM members WHERE group_id = ? AND user_id = ? RETURNING joined_seq", gid, uid).Scan(&joined)
		if errors.Is(err, sql.ErrNoRows) {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "user %d is not a member of group %d", uid, gid)
		}
		if err != nil {
			return err
		}
		conv := clusterchat.GroupConv(gid)
		last, err := s.lastSeq(ctx, tx, conv)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO departed (group_id, user_id, joined_seq, left_seq) VALUES (?, ?, ?, ?)", gid, uid, joined, last); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM cursors WHERE user_id = ? AND conv = ?", uid, conv)
		return err
	})
}

// Access implements clusterchat.Store.
func (s *Store) Access(ctx context.Context, gid, uid int64) (clusterchat.Access, error) {
	var (
		a            clusterchat.Access
		history      string
		role         sql.NullString
		joined       sql.NullInt64
		dJoin, dLeft sql.NullInt64
	)
	err := s.rdb.QueryRowContext(ctx, `SELECT g.history, m.role, m.joined_seq, d.joined_seq, d.left_seq
		FROM chat_groups g
		LEFT JOIN members m ON m.group_id = g.id AND m.user_id = ?2
		LEFT JOIN departed d ON d.group_id = g.id AND d.user_id = ?2
		WHERE g.id = ?1`, gid, uid).Scan(&history, &role, &joined, &dJoin, &dLeft)
	if errors.Is(err, sql.ErrNoRows) {
		return a, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	if err != nil {
		return a, s.wrap("access", err)
	}
	switch {
	case role.Valid:
		a.Role, a.After = role.String, joined.Int64
	case dLeft.Valid:
		a.Former, a.After, a.Until = true, dJoin.Int64, dLeft.Int64
	}
	if history == clusterchat.HistoryAll {
		a.After = 0
	}
	return a, nil
}

// AddPending implements clusterchat.Store.
func (s *Store) AddPending(ctx context.Context, p clusterchat.Pending) error {
	return s.write(ctx, "add pending", func(tx *sql.Tx) error {
		ok, err := exists(ctx, tx, "chat_groups", p.GroupID)
		if err != nil {
			return err
		}
		if !ok {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", p.GroupID)
		}
		if err := mustUser(ctx, tx, p.UserID); err != nil {
			return err
		}
		var member bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM members WHERE group_id = ? AND user_id = ?)", p.GroupID, p.UserID).Scan(&member); err != nil {
			return err
		}
		if member {
			return clusterchat.Errorf(clusterchat.EEXISTS, "user %d is a member of group %d", p.UserID, p.GroupID)
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO group_pending (group_id, user_id, kind, by_id, ts) VALUES (?, ?, ?, ?, ?)",
			p.GroupID, p.UserID, p.Kind, p.By, time.Now().UnixMilli())
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "user %d already has a pending %s for group %d", p.UserID, p.Kind, p.GroupID)
		}
		return err
	})
}

// DeletePending implements clusterchat.Store.
func (s *Store) DeletePending(ctx context.Context, gid, uid int64) error {
	return s.write(ctx, "delete pending", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM group_pending WHERE group_id = ? AND user_id = ?", gid, uid)
		return found(res, err, "nothing pending for user %d in group %d", uid, gid)
	})
}

const pendingQuery = `SELECT p.group_id, g.name, p.user_id, u.name, p.kind, p.by_id, p.ts
	FROM group_pending p JOIN chat_groups g ON g.id = p.group_id JOIN users u ON u.id = p.user_id `

// GroupPending implements clusterchat.Store.
func (s *Store) GroupPending(ctx context.Context, gid int64) ([]clusterchat.Pending, error) {
	return s.queryPending(ctx, pendingQuery+"WHERE p.group_id = ? ORDER BY p.user_id", gid)
}

// UserPending implements clusterchat.Store.
func (s *Store) UserPending(ctx context.Context, uid int64) ([]clusterchat.Pending, error) {
	return s.queryPending(ctx, pendingQuery+"WHERE p.user_id = ? ORDER BY p.group_id", uid)
}

func (s *Store) queryPending(ctx context.Context, q string, id int64) ([]clusterchat.Pending, error) {
	rows, err := s.rdb.QueryContext(ctx, q, id)
	if err != nil {
		return nil, s.wrap("pending", err)
	}
	defer rows.Close()
	var out []clusterchat.Pending
	for rows.Next() {
		var (
			p  clusterchat.Pending
			ts int64
		)
		if err := rows.Scan(&p.GroupID, &p.GroupName, &p.UserID, &p.UserName, &p.Kind, &p.By, &ts); err != nil {
			return nil, s.wrap("pending", err)
		}
		p.Time = time.UnixMilli(ts)
		out = append(out, p)
	}
	return out, s.wrap("pending", rows.Err())
}

// SearchUsers implements clusterchat.Store. SQLite compares TEXT bytewise
// (BINARY), so the prefix is a range of the unique name index.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]clusterchat.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	lower := max(prefix, after)
	q := "SELECT id, name FROM users WHERE name >= ? AND name != ? AND substr(name, 1, length(?)) = ?"
	args := []any{lower, after, prefix, prefix}
	if end, ok := clusterchat.PrefixEnd(prefix); ok {
		q += " AND name < ?"
		args = append(args, end)
	}
	q += " ORDER BY name LIMIT ?"
	return s.queryUsers(ctx, "search users", q, append(args, limit)...)
}

// SetUserName implements clusterchat.Store.
func (s *Store) SetUserName(ctx context.Context, uid int64, name string) error {
	return s.write(ctx, "set user name", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE users SET name = ? WHERE id = ?", name, uid)
		if isUnique(err) {
			return clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
		}
		return found(res, err, "no user %d", uid)
	})
}
