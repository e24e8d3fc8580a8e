package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"clusterchat"
)

// CreateUser stores a new account. EEXISTS if the name is taken.
func (s *Store) CreateUser(ctx context.Context, name, passHash string) (int64, error) {
	var id int64
	err := s.run(ctx, "create user", false, func() error {
		return s.pool.QueryRow(ctx,
			`INSERT INTO users (name, pass_hash) VALUES ($1, $2) RETURNING id`, name, passHash).Scan(&id)
	})
	if pgCode(err) == codeUniqueViolation {
		return 0, clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
	}
	return id, err
}

// User returns an account. ENOTFOUND if there is none.
func (s *Store) User(ctx context.Context, id int64) (*clusterchat.User, error) {
	u := &clusterchat.User{ID: id}
	err := s.run(ctx, "user", true, func() error {
		return s.pool.QueryRow(ctx, `SELECT name, pass_hash FROM users WHERE id = $1`, id).Scan(&u.Name, &u.PassHash)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", id)
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// AddFriend stores the friendship both ways in one statement. ENOTFOUND if
// either user is missing, EEXISTS if they are already friends.
func (s *Store) AddFriend(ctx context.Context, a, b int64) error {
	if a == b {
		return clusterchat.Errorf(clusterchat.EINVALID, "a user cannot befriend itself")
	}
	err := s.run(ctx, "add friend", false, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO friends (a, b) VALUES ($1, $2), ($2, $1)`, a, b)
		return err
	})
	switch pgCode(err) {
	case codeUniqueViolation:
		return clusterchat.Errorf(clusterchat.EEXISTS, "users %d and %d are already friends", a, b)
	case codeForeignKeyViolation:
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no such user (%d or %d)", a, b)
	}
	return err
}

// Friends returns the friends of uid, ordered by id, without password hashes.
func (s *Store) Friends(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	return s.queryUsers(ctx, "friends", `SELECT u.id, u.name FROM friends f JOIN users u ON u.id = f.b WHERE f.a = $1 ORDER BY u.id`, uid)
}

// PutToken stores a session token hash for uid until expires; storing the
// same hash again replaces it.
func (s *Store) PutToken(ctx context.Context, tokenHash string, uid int64, expires time.Time) error {
	err := s.run(ctx, "put token", true, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO tokens (hash, uid, expires) VALUES ($1, $2, $3)
			ON CONFLICT (hash) DO UPDATE SET uid = EXCLUDED.uid, expires = EXCLUDED.expires`,
			tokenHash, uid, expires)
		return err
	})
	if pgCode(err) == codeForeignKeyViolation {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", uid)
	}
	return err
}

// TokenUser returns the user of an unexpired token. EAUTH otherwise.
func (s *Store) TokenUser(ctx context.Context, tokenHash string) (int64, error) {
	var uid int64
	err := s.run(ctx, "token user", true, func() error {
		return s.pool.QueryRow(ctx, `SELECT uid FROM tokens WHERE hash = $1 AND expires > $2`,
			tokenHash, time.Now()).Scan(&uid)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, clusterchat.Errorf(clusterchat.EAUTH, "unknown or expired token")
	}
	return uid, err
}
