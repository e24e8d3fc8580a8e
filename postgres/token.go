package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"clusterchat"
)

// RenewToken implements clusterchat.Store.
func (s *Store) RenewToken(ctx context.Context, tokenHash string, expires time.Time) error {
	var n int64
	err := s.run(ctx, "renew token", true, func() error {
		tag, err := s.pool.Exec(ctx, `UPDATE tokens SET expires = $1 WHERE hash = $2 AND expires > now()`, expires, tokenHash)
		n = tag.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		return clusterchat.Errorf(clusterchat.EAUTH, "unknown or expired token")
	}
	return err
}

// DeleteToken implements clusterchat.Store.
func (s *Store) DeleteToken(ctx context.Context, tokenHash string) error {
	return s.run(ctx, "delete token", true, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE hash = $1`, tokenHash)
		return err
	})
}

// DeleteUserTokens implements clusterchat.Store.
func (s *Store) DeleteUserTokens(ctx context.Context, uid int64) error {
	return s.run(ctx, "delete user tokens", true, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE uid = $1`, uid)
		return err
	})
}

// DeleteExpiredTokens implements clusterchat.Store.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.run(ctx, "delete expired tokens", true, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE expires <= $1`, now)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

// SetPassword implements clusterchat.Store: the new hash and the revocation
// of every token commit together.
func (s *Store) SetPassword(ctx context.Context, uid int64, passHash string) error {
	return s.run(ctx, "set password", true, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `UPDATE users SET pass_hash = $1 WHERE id = $2`, passHash, uid)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", uid)
			}
			_, err = tx.Exec(ctx, `DELETE FROM tokens WHERE uid = $1`, uid)
			return err
		})
	})
}
