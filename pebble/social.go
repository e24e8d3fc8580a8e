package pebble

import (
	"context"
	"errors"
	"slices"
	"time"

	"clusterchat"

	pdb "github.com/cockroachdb/pebble/v2"
)

// read runs fn as one read call: EUNAVAILABLE once closed, errors mapped.
func (s *Store) read(op string, fn func() error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.fail(op, fn())
}

// mustHave returns ENOTFOUND (with msg) if key is missing.
func (s *Store) mustHave(key []byte, msg string, args ...any) error {
	ok, err := s.has(key)
	if err != nil {
		return err
	}
	if !ok {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, msg, args...)
	}
	return nil
}

// mustUsers returns ENOTFOUND for the first of ids that is no user.
func (s *Store) mustUsers(ids ...int64) error {
	for _, id := range ids {
		if err := s.mustExist(key1(nil, pUser, id), "user", id); err != nil {
			return err
		}
	}
	return nil
}

// usersByID returns (id, name) of ids, in their order.
func (s *Store) usersByID(ids []int64) ([]clusterchat.User, error) {
	var out []clusterchat.User
	for _, id := range ids {
		name, err := s.userName(id)
		if err != nil {
			return nil, err
		}
		out = append(out, clusterchat.User{ID: id, Name: name})
	}
	return out, nil
}

// AreFriends implements clusterchat.Store.
func (s *Store) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	var ok bool
	err := s.read("are friends", func() (err error) {
		ok, err = s.has(key2(nil, pFriend, a, b))
		return err
	})
	return ok, err
}

// RequestFriend implements clusterchat.Store.
func (s *Store) RequestFriend(ctx context.Context, from, to int64) (bool, error) {
	if from == to {
		return false, clusterchat.Errorf(clusterchat.EINVALID, "a user cannot befriend itself")
	}
	var friends bool
	err := s.write(ctx, "request friend", func(b *pdb.Batch) (func(), error) {
		if err := s.mustUsers(from, to); err != nil {
			return nil, err
		}
		checks := []struct {
			key  []byte
			fail *clusterchat.Error
		}{
			{key2(nil, pBlock, from, to), clusterchat.Errorf(clusterchat.EFORBIDDEN, "refused")},
			{key2(nil, pBlock, to, from), clusterchat.Errorf(clusterchat.EFORBIDDEN, "refused")},
			{key2(nil, pFriend, from, to), clusterchat.Errorf(clusterchat.EEXISTS, "users %d and %d are already friends", from, to)},
			{key2(nil, pFriendReq, from, to), clusterchat.Errorf(clusterchat.EEXISTS, "already asked %d", to)},
		}
		for _, c := range checks {
			found, err := s.has(c.key)
			if err != nil {
				return nil, err
			}
			if found {
				return nil, c.fail
			}
		}
		asked, err := s.has(key2(nil, pFriendReq, to, from))
		if err != nil {
			return nil, err
		}
		if asked {
			friends = true
			s.befriend(b, from, to)
			return nil, nil
		}
		b.Set(key2(nil, pFriendReq, from, to), appendInt(nil, time.Now().UnixMilli()), nil)
		b.Set(key2(nil, pFriendRcv, to, from), nil, nil)
		return nil, nil
	})
	return friends, err
}

// befriend puts into b the friendship of to and from and the removal of
// the request of from to `to`.
func (s *Store) befriend(b *pdb.Batch, to, from int64) {
	dropRequest(b, from, to)
	b.Set(key2(nil, pFriend, from, to), nil, nil)
	b.Set(key2(nil, pFriend, to, from), nil, nil)
}

func dropRequest(b *pdb.Batch, from, to int64) {
	b.Delete(key2(nil, pFriendReq, from, to), nil)
	b.Delete(key2(nil, pFriendRcv, to, from), nil)
}

// AcceptFriend implements clusterchat.Store.
func (s *Store) AcceptFriend(ctx context.Context, uid, from int64) error {
	return s.write(ctx, "accept friend", func(b *pdb.Batch) (func(), error) {
		if err := s.mustHave(key2(nil, pFriendReq, from, uid), "no friend request from %d", from); err != nil {
			return nil, err
		}
		s.befriend(b, uid, from)
		return nil, nil
	})
}

// DeleteFriendRequest implements clusterchat.Store.
func (s *Store) DeleteFriendRequest(ctx context.Context, from, to int64) error {
	return s.write(ctx, "delete friend request", func(b *pdb.Batch) (func(), error) {
		if err := s.mustHave(key2(nil, pFriendReq, from, to), "no friend request from %d to %d", from, to); err != nil {
			return nil, err
		}
		dropRequest(b, from, to)
		return nil, nil
	})
}

// FriendRequests implements clusterchat.Store.
func (s *Store) FriendRequests(ctx context.Context, uid int64) ([]clusterchat.FriendRequest, error) {
	var out []clusterchat.FriendRequest
	err := s.read("friend requests", func() error {
		sent, err := s.scanIDs(key1(nil, pFriendReq, uid))
		if err != nil {
			return err
		}
		got, err := s.scanIDs(key1(nil, pFriendRcv, uid))
		if err != nil {
			return err
		}
		var pairs [][2]int64
		for _, from := range got {
			pairs = append(pairs, [2]int64{from, uid})
		}
		for _, to := range sent {
			pairs = append(pairs, [2]int64{uid, to})
		}
		// Received (From < uid or > uid) and sent (From == uid) merged by (From, To).
		sortPairs(pairs)
		for _, p := range pairs {
			r := clusterchat.FriendRequest{From: p[0], To: p[1]}
			v, ok, err := s.get(key2(nil, pFriendReq, p[0], p[1]))
			if err != nil {
				return err
			}
			if !ok || len(v) != 8 {
				return errCorrupt
			}
			r.Time = time.UnixMilli(getInt(v))
			if r.FromName, err = s.userName(r.From); err != nil {
				return err
			}
			if r.ToName, err = s.userName(r.To); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

func sortPairs(p [][2]int64) {
	slices.SortFunc(p, func(a, b [2]int64) int {
		if c := cmpInt(a[0], b[0]); c != 0 {
			return c
		}
		return cmpInt(a[1], b[1])
	})
}

// RemoveFriend implements clusterchat.Store.
func (s *Store) RemoveFriend(ctx context.Context, a, b int64) error {
	return s.write(ctx, "remove friend", func(bt *pdb.Batch) (func(), error) {
		if err := s.mustHave(key2(nil, pFriend, a, b), "users %d and %d are not friends", a, b); err != nil {
			return nil, err
		}
		bt.Delete(key2(nil, pFriend, a, b), nil)
		bt.Delete(key2(nil, pFriend, b, a), nil)
		return nil, nil
	})
}

// Block implements clusterchat.Store.
func (s *Store) Block(ctx context.Context, uid, target int64) error {
	if uid == target {
		return clusterchat.Errorf(clusterchat.EINVALID, "a user cannot block itself")
	}
	return s.write(ctx, "block", func(b *pdb.Batch) (func(), error) {
		if err := s.mustUsers(uid, target); err != nil {
			return nil, err
		}
		k := key2(nil, pBlock, uid, target)
		dup, err := s.has(k)
		if err != nil {
			return nil, err
		}
		if dup {
			return nil, clusterchat.Errorf(clusterchat.EEXISTS, "already blocked")
		}
		b.Set(k, nil, nil)
		b.Delete(key2(nil, pFriend, uid, target), nil)
		b.Delete(key2(nil, pFriend, target, uid), nil)
		dropRequest(b, uid, target)
		dropRequest(b, target, uid)
		return nil, nil
	})
}

// Unblock implements clusterchat.Store.
func (s *Store) Unblock(ctx context.Context, uid, target int64) error {
	return s.write(ctx, "unblock", func(b *pdb.Batch) (func(), error) {
		k := key2(nil, pBlock, uid, target)
		if err := s.mustHave(k, "user %d is not blocked", target); err != nil {
			return nil, err
		}
		b.Delete(k, nil)
		return nil, nil
	})
}

// Blocked implements clusterchat.Store.
func (s *Store) Blocked(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	var out []clusterchat.User
	err := s.read("blocked", func() error {
		ids, err := s.scanIDs(key1(nil, pBlock, uid))
		if err != nil {
			return err
		}
		out, err = s.usersByID(ids)
		return err
	})
	return out, err
}

// IsBlocked implements clusterchat.Store.
func (s *Store) IsBlocked(ctx context.Context, blocker, target int64) (bool, error) {
	var ok bool
	err := s.read("is blocked", func() (err error) {
		ok, err = s.has(key2(nil, pBlock, blocker, target))
		return err
	})
	return ok, err
}

// groupRow reads the g row of gid; ok is false if there is none.
func (s *Store) groupRow(gid int64) (g clusterchat.Group, creator int64, ok bool, err error) {
	v, ok, err := s.get(key1(nil, pGroup, gid))
	if err != nil || !ok {
		return g, 0, false, err
	}
	g.ID = gid
	creator, err = decodeGroup(v, &g)
	return g, creator, err == nil, err
}

// UpdateGroup implements clusterchat.Store.
func (s *Store) UpdateGroup(ctx context.Context, g clusterchat.Group) error {
	if g.History == "" {
		g.History = clusterchat.HistoryJoined
	}
	return s.write(ctx, "update group", func(b *pdb.Batch) (func(), error) {
		old, creator, ok, err := s.groupRow(g.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", g.ID)
		}
		if old.Name != g.Name {
			nk := keyStr(nil, pGroupName, g.Name)
			taken, err := s.has(nk)
			if err != nil {
				return nil, err
			}
			if taken {
				return nil, clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", g.Name)
			}
			b.Delete(keyStr(nil, pGroupName, old.Name), nil)
			b.Set(nk, appendInt(nil, g.ID), nil)
		}
		b.Set(key1(nil, pGroup, g.ID), encodeGroup(nil, &g, creator), nil)
		return nil, nil
	})
}

// deleteRange puts into b the deletion of every key with prefix, and
// returns the ids that follow the prefix in those keys.
func (s *Store) deleteRange(b *pdb.Batch, prefix []byte) ([]int64, error) {
	ids, err := s.scanIDs(prefix)
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// DeleteGroup implements clusterchat.Store.
func (s *Store) DeleteGroup(ctx context.Context, gid int64) error {
	return s.write(ctx, "delete group", func(b *pdb.Batch) (func(), error) {
		g, _, ok, err := s.groupRow(gid)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		conv := clusterchat.GroupConv(gid)
		members, err := s.deleteRange(b, key1(nil, pMember, gid))
		if err != nil {
			return nil, err
		}
		for _, uid := range members {
			b.Delete(key2(nil, pUserGroup, uid, gid), nil)
			b.Delete(keyIntStr(nil, pCursor, uid, conv), nil)
		}
		pending, err := s.deleteRange(b, key1(nil, pPending, gid))
		if err != nil {
			return nil, err
		}
		for _, uid := range pending {
			b.Delete(key2(nil, pUserPend, uid, gid), nil)
		}
		if _, err := s.deleteRange(b, key1(nil, pDeparted, gid)); err != nil {
			return nil, err
		}
		b.Delete(keyStr(nil, pGroupName, g.Name), nil)
		b.Delete(key1(nil, pGroup, gid), nil)
		return nil, nil
	})
}

// member returns the key of uid's membership of gid and its join seq;
// ENOTFOUND if uid is not a member.
func (s *Store) member(gid, uid int64) (key []byte, joined int64, err error) {
	key = key2(nil, pMember, gid, uid)
	v, ok, err := s.get(key)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, clusterchat.Errorf(clusterchat.ENOTFOUND, "user %d is not a member of group %d", uid, gid)
	}
	_, joined, err = parseMember(v)
	return key, joined, err
}

// SetRole implements clusterchat.Store.
func (s *Store) SetRole(ctx context.Context, gid, uid int64, role string) error {
	return s.write(ctx, "set role", func(b *pdb.Batch) (func(), error) {
		mk, joined, err := s.member(gid, uid)
		if err != nil {
			return nil, err
		}
		b.Set(mk, memberVal(role, joined), nil)
		return nil, nil
	})
}

// LeaveGroup implements clusterchat.Store.
func (s *Store) LeaveGroup(ctx context.Context, gid, uid int64) error {
	return s.write(ctx, "leave group", func(b *pdb.Batch) (func(), error) {
		mk, joined, err := s.member(gid, uid)
		if err != nil {
			return nil, err
		}
		conv := clusterchat.GroupConv(gid)
		last, err := s.lastSeq(conv)
		if err != nil {
			return nil, err
		}
		b.Delete(mk, nil)
		b.Delete(key2(nil, pUserGroup, uid, gid), nil)
		b.Delete(keyIntStr(nil, pCursor, uid, conv), nil)
		b.Set(key2(nil, pDeparted, gid, uid), appendInt(appendInt(nil, joined), last), nil)
		return nil, nil
	})
}

// Access implements clusterchat.Store.
func (s *Store) Access(ctx context.Context, gid, uid int64) (clusterchat.Access, error) {
	var a clusterchat.Access
	err := s.read("access", func() error {
		g, _, ok, err := s.groupRow(gid)
		if err != nil {
			return err
		}
		if !ok {
			return clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
		}
		v, member, err := s.get(key2(nil, pMember, gid, uid))
		if err != nil {
			return err
		}
		if member {
			if a.Role, a.After, err = parseMember(v); err != nil {
				return err
			}
		} else {
			v, former, err := s.get(key2(nil, pDeparted, gid, uid))
			if err != nil {
				return err
			}
			if former {
				if len(v) != 16 {
					return errCorrupt
				}
				a.Former, a.After, a.Until = true, getInt(v), getInt(v[8:])
			}
		}
		if g.History == clusterchat.HistoryAll {
			a.After = 0
		}
		return nil
	})
	return a, err
}

// AddPending implements clusterchat.Store.
func (s *Store) AddPending(ctx context.Context, p clusterchat.Pending) error {
	return s.write(ctx, "add pending", func(b *pdb.Batch) (func(), error) {
		if err := s.mustExist(key1(nil, pGroup, p.GroupID), "group", p.GroupID); err != nil {
			return nil, err
		}
		if err := s.mustExist(key1(nil, pUser, p.UserID), "user", p.UserID); err != nil {
			return nil, err
		}
		for _, c := range []struct {
			key []byte
			msg string
		}{
			{key2(nil, pMember, p.GroupID, p.UserID), "user %d is a member of group %d"},
			{key2(nil, pPending, p.GroupID, p.UserID), "user %d already has something pending for group %d"},
		} {
			found, err := s.has(c.key)
			if err != nil {
				return nil, err
			}
			if found {
				return nil, clusterchat.Errorf(clusterchat.EEXISTS, c.msg, p.UserID, p.GroupID)
			}
		}
		v := appendStr(nil, p.Kind)
		v = appendInt(appendInt(v, p.By), time.Now().UnixMilli())
		b.Set(key2(nil, pPending, p.GroupID, p.UserID), v, nil)
		b.Set(key2(nil, pUserPend, p.UserID, p.GroupID), nil, nil)
		return nil, nil
	})
}

// DeletePending implements clusterchat.Store.
func (s *Store) DeletePending(ctx context.Context, gid, uid int64) error {
	return s.write(ctx, "delete pending", func(b *pdb.Batch) (func(), error) {
		k := key2(nil, pPending, gid, uid)
		if err := s.mustHave(k, "nothing pending for user %d in group %d", uid, gid); err != nil {
			return nil, err
		}
		b.Delete(k, nil)
		b.Delete(key2(nil, pUserPend, uid, gid), nil)
		return nil, nil
	})
}

// pendingRow reads the p row of (gid, uid) with the names.
func (s *Store) pendingRow(gid, uid int64) (clusterchat.Pending, error) {
	p := clusterchat.Pending{GroupID: gid, UserID: uid}
	v, ok, err := s.get(key2(nil, pPending, gid, uid))
	if err != nil {
		return p, err
	}
	if !ok {
		return p, errCorrupt
	}
	r := reader{b: v}
	p.Kind = r.str()
	if r.err != nil || len(r.b) != 16 {
		return p, errCorrupt
	}
	p.By, p.Time = getInt(r.b), time.UnixMilli(getInt(r.b[8:]))
	g, _, _, err := s.groupRow(gid)
	if err != nil {
		return p, err
	}
	p.GroupName = g.Name
	p.UserName, err = s.userName(uid)
	return p, err
}

// GroupPending implements clusterchat.Store.
func (s *Store) GroupPending(ctx context.Context, gid int64) ([]clusterchat.Pending, error) {
	return s.listPending("group pending", key1(nil, pPending, gid), func(id int64) (int64, int64) { return gid, id })
}

// UserPending implements clusterchat.Store.
func (s *Store) UserPending(ctx context.Context, uid int64) ([]clusterchat.Pending, error) {
	return s.listPending("user pending", key1(nil, pUserPend, uid), func(id int64) (int64, int64) { return id, uid })
}

// listPending reads the pending rows named by the ids under prefix.
func (s *Store) listPending(op string, prefix []byte, pair func(id int64) (gid, uid int64)) ([]clusterchat.Pending, error) {
	var out []clusterchat.Pending
	err := s.read(op, func() error {
		ids, err := s.scanIDs(prefix)
		if err != nil {
			return err
		}
		for _, id := range ids {
			p, err := s.pendingRow(pair(id))
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// SearchUsers implements clusterchat.Store: a scan of the name index.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]clusterchat.User, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []clusterchat.User
	err := s.read("search users", func() error {
		lower := keyStr(nil, pUserName, max(prefix, after))
		pk := keyStr(nil, pUserName, prefix)
		it, err := s.iter(lower, prefixEnd(pk))
		if err != nil {
			return err
		}
		for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
			name := string(it.Key()[1:])
			if name == after {
				continue
			}
			v := it.Value()
			if len(v) != 8 {
				it.Close()
				return errCorrupt
			}
			out = append(out, clusterchat.User{ID: getInt(v), Name: name})
		}
		return errors.Join(it.Error(), it.Close())
	})
	return out, err
}

// SetUserName implements clusterchat.Store.
func (s *Store) SetUserName(ctx context.Context, uid int64, name string) error {
	return s.updateUser(ctx, "set user name", uid, func(b *pdb.Batch, u *clusterchat.User) error {
		if u.Name == name {
			return nil
		}
		nk := keyStr(nil, pUserName, name)
		taken, err := s.has(nk)
		if err != nil {
			return err
		}
		if taken {
			return clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
		}
		b.Delete(keyStr(nil, pUserName, u.Name), nil)
		b.Set(nk, appendInt(nil, uid), nil)
		u.Name = name
		return nil
	})
}

// updateUser rewrites user uid's row after fn changed it.
func (s *Store) updateUser(ctx context.Context, op string, uid int64, fn func(b *pdb.Batch, u *clusterchat.User) error) error {
	return s.write(ctx, op, func(b *pdb.Batch) (func(), error) {
		u := clusterchat.User{ID: uid}
		ok, err := s.user(&u)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", uid)
		}
		if err := fn(b, &u); err != nil {
			return nil, err
		}
		b.Set(key1(nil, pUser, uid), encodeUser(nil, u.Name, u.PassHash), nil)
		return nil, nil
	})
}
