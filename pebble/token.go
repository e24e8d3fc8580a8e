package pebble

import (
	"context"
	"errors"
	"time"

	pdb "github.com/cockroachdb/pebble/v2"

	"clusterchat"
)

// parseToken splits a t row's value into its user and expiry (unix ms).
func parseToken(v []byte) (uid, expires int64, err error) {
	if len(v) != 16 {
		return 0, 0, errCorrupt
	}
	return getInt(v), getInt(v[8:]), nil
}

// indexTokens is the migration that adds the T index: once, for a store
// made before it, every token gets its index row.
func (s *Store) indexTokens() error {
	done, err := s.has(metaTokenIndex)
	if err != nil || done {
		return s.fail("index tokens", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	err = s.eachToken(func(hash string, uid, _ int64) {
		b.Set(keyIntStr(nil, pUserToken, uid, hash), nil, nil)
	})
	if err != nil {
		return s.fail("index tokens", err)
	}
	b.Set(metaTokenIndex, nil, nil)
	return s.fail("index tokens", b.Commit(pdb.Sync))
}

// eachToken calls f for every t row.
func (s *Store) eachToken(f func(hash string, uid, expires int64)) error {
	prefix := []byte{pToken}
	it, err := s.iter(prefix, prefixEnd(prefix))
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		uid, exp, err := parseToken(it.Value())
		if err != nil {
			it.Close()
			return err
		}
		f(string(it.Key()[1:]), uid, exp)
	}
	return errors.Join(it.Error(), it.Close())
}

// RenewToken implements clusterchat.Store.
func (s *Store) RenewToken(ctx context.Context, tokenHash string, expires time.Time) error {
	return s.write(ctx, "renew token", func(b *pdb.Batch) (func(), error) {
		k := keyStr(nil, pToken, tokenHash)
		v, ok, err := s.get(k)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, clusterchat.Errorf(clusterchat.EAUTH, "bad or expired token")
		}
		uid, exp, err := parseToken(v)
		if err != nil {
			return nil, err
		}
		if exp <= time.Now().UnixMilli() {
			return nil, clusterchat.Errorf(clusterchat.EAUTH, "bad or expired token")
		}
		b.Set(k, appendInt(appendInt(nil, uid), expires.UnixMilli()), nil)
		return nil, nil
	})
}

// DeleteToken implements clusterchat.Store.
func (s *Store) DeleteToken(ctx context.Context, tokenHash string) error {
	return s.write(ctx, "delete token", func(b *pdb.Batch) (func(), error) {
		k := keyStr(nil, pToken, tokenHash)
		v, ok, err := s.get(k)
		if err != nil || !ok {
			return nil, err
		}
		uid, _, err := parseToken(v)
		if err != nil {
			return nil, err
		}
		b.Delete(k, nil)
		b.Delete(keyIntStr(nil, pUserToken, uid, tokenHash), nil)
		return nil, nil
	})
}

// DeleteUserTokens implements clusterchat.Store.
func (s *Store) DeleteUserTokens(ctx context.Context, uid int64) error {
	return s.write(ctx, "delete user tokens", func(b *pdb.Batch) (func(), error) {
		return nil, s.deleteUserTokens(b, uid)
	})
}

// deleteUserTokens adds the deletion of uid's tokens to b.
func (s *Store) deleteUserTokens(b *pdb.Batch, uid int64) error {
	prefix := key1(nil, pUserToken, uid)
	it, err := s.iter(prefix, prefixEnd(prefix))
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		b.Delete(keyStr(nil, pToken, string(it.Key()[len(prefix):])), nil)
		b.Delete(it.Key(), nil)
	}
	return errors.Join(it.Error(), it.Close())
}

// DeleteExpiredTokens implements clusterchat.Store. It scans every token:
// a sweep runs rarely (hourly), and an expiry index would have to move on
// every renewal.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, "delete expired tokens", func(b *pdb.Batch) (func(), error) {
		limit := now.UnixMilli()
		return nil, s.eachToken(func(hash string, uid, exp int64) {
			if exp <= limit {
				b.Delete(keyStr(nil, pToken, hash), nil)
				b.Delete(keyIntStr(nil, pUserToken, uid, hash), nil)
				n++
			}
		})
	})
	return n, err
}

// SetPassword implements clusterchat.Store.
func (s *Store) SetPassword(ctx context.Context, uid int64, passHash string) error {
	return s.write(ctx, "set password", func(b *pdb.Batch) (func(), error) {
		u := &clusterchat.User{ID: uid}
		ok, err := s.user(u)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", uid)
		}
		b.Set(key1(nil, pUser, uid), encodeUser(nil, u.Name, passHash), nil)
		return nil, s.deleteUserTokens(b, uid)
	})
}
