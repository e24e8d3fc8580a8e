package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"clusterchat"
)

// CreateGroup stores a public group; see NewGroup.
func (s *Store) CreateGroup(ctx context.Context, creator int64, name, desc string) (int64, error) {
	return s.NewGroup(ctx, creator, clusterchat.Group{Name: name, Desc: desc})
}

// NewGroup stores a group with creator as its only member, role
// RoleCreator, and the creator's cursor row, in one statement. EEXISTS if
// the name is taken, ENOTFOUND if creator does not exist.
func (s *Store) NewGroup(ctx context.Context, creator int64, g clusterchat.Group) (int64, error) {
	if g.History == "" {
		g.History = clusterchat.HistoryJoined
	}
	var gid int64
	err := s.run(ctx, "create group", false, func() error {
		return s.pool.QueryRow(ctx, `
WITH g AS (
	INSERT INTO groups (name, descr, private, history) VALUES ($1, $2, $5, $6) RETURNING id
), m AS (
	INSERT INTO members (gid, uid, role) SELECT id, $3, $4 FROM g
), c AS (
	INSERT INTO cursors (uid, conv) SELECT $3, 'g:' || id FROM g
)
SELECT id FROM g`, g.Name, g.Desc, creator, clusterchat.RoleCreator, g.Private, g.History).Scan(&gid)
	})
	switch pgCode(err) {
	case codeUniqueViolation:
		return 0, clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", g.Name)
	case codeForeignKeyViolation:
		return 0, clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", creator)
	}
	return gid, err
}

// JoinGroup adds uid to gid with RoleNormal, its cursors at the group's last
// seq, in one statement. It reports false when uid was already a member.
func (s *Store) JoinGroup(ctx context.Context, gid, uid int64) (bool, error) {
	var added bool
	err := s.run(ctx, "join group", false, func() error {
		return s.pool.QueryRow(ctx, `
WITH last AS (
	SELECT coalesce((SELECT last_seq FROM convs WHERE conv = $4), 0) AS seq
), m AS (
	INSERT INTO members (gid, uid, role, joined_seq) SELECT $1, $2, $3, last.seq FROM last
	ON CONFLICT (gid, uid) DO NOTHING
	RETURNING gid
), c AS (
	INSERT INTO cursors (uid, conv, delivered, read)
	SELECT $2, $4, last.seq, last.seq FROM m, last
	ON CONFLICT (uid, conv) DO NOTHING
), p AS (
	DELETE FROM group_pending WHERE gid = $1 AND uid = $2 AND EXISTS (SELECT 1 FROM m)
), d AS (
	DELETE FROM departed WHERE gid = $1 AND uid = $2 AND EXISTS (SELECT 1 FROM m)
)
SELECT count(*) > 0 FROM m`, gid, uid, clusterchat.RoleNormal, clusterchat.GroupConv(gid)).Scan(&added)
	})
	if pgCode(err) == codeForeignKeyViolation {
		return false, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d or no user %d", gid, uid)
	}
	return added, err
}

// Group returns a group with its members ordered by user id, in one query.
// ENOTFOUND if there is none.
func (s *Store) Group(ctx context.Context, gid int64) (*clusterchat.Group, error) {
	var g *clusterchat.Group
	err := s.run(ctx, "group", true, func() error {
		rows, err := s.pool.Query(ctx, `
SELECT g.id, g.name, g.descr, g.private, g.history, u.id, u.name, m.role
FROM groups g
LEFT JOIN members m ON m.gid = g.id
LEFT JOIN users u ON u.id = m.uid
WHERE g.id = $1
ORDER BY u.id`, gid)
		if err != nil {
			return err
		}
		gs, err := collectGroups(rows)
		if len(gs) == 1 {
			g = &gs[0]
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if g == nil {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	return g, nil
}

// UserGroups returns the groups uid belongs to, each with its members,
// ordered by group id, in one query.
func (s *Store) UserGroups(ctx context.Context, uid int64) ([]clusterchat.Group, error) {
	var out []clusterchat.Group
	err := s.run(ctx, "user groups", true, func() error {
		rows, err := s.pool.Query(ctx, `
SELECT g.id, g.name, g.descr, g.private, g.history, u.id, u.name, m.role
FROM members mine
JOIN groups g ON g.id = mine.gid
JOIN members m ON m.gid = g.id
JOIN users u ON u.id = m.uid
WHERE mine.uid = $1
ORDER BY g.id, u.id`, uid)
		if err != nil {
			return err
		}
		out, err = collectGroups(rows)
		return err
	})
	return out, err
}

// collectGroups folds rows of (group, member) ordered by group into groups.
// A group without members comes as one row with NULL member columns.
func collectGroups(rows pgx.Rows) ([]clusterchat.Group, error) {
	defer rows.Close()
	var out []clusterchat.Group
	for rows.Next() {
		var (
			g           clusterchat.Group
			uid         *int64
			uname, role *string
		)
		if err := rows.Scan(&g.ID, &g.Name, &g.Desc, &g.Private, &g.History, &uid, &uname, &role); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != g.ID {
			out = append(out, g)
		}
		if uid != nil {
			g := &out[len(out)-1]
			g.Members = append(g.Members, clusterchat.Member{UserID: *uid, Name: *uname, Role: *role})
		}
	}
	return out, rows.Err()
}

// Role returns uid's role in gid, "" if uid is not a member. ENOTFOUND if
// the group does not exist.
func (s *Store) Role(ctx context.Context, gid, uid int64) (string, error) {
	var role *string
	err := s.run(ctx, "role", true, func() error {
		return s.pool.QueryRow(ctx,
			`SELECT (SELECT role FROM members WHERE gid = $1 AND uid = $2) FROM groups WHERE id = $1`,
			gid, uid).Scan(&role)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	if err != nil || role == nil {
		return "", err
	}
	return *role, nil
}
