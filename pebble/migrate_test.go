package pebble

import (
	"encoding/binary"
	"testing"
	"time"

	"clusterchat"
	"clusterchat/storetest"

	pdb "github.com/cockroachdb/pebble/v2"
)

// TestMigrateFromPrevious writes a directory in the key format from before
// the social settings (group rows end at the creator, member rows are the
// bare role, no lastgroup meta), then opens it as a Store.
func TestMigrateFromPrevious(t *testing.T) {
	dir := t.TempDir()
	db, err := pdb.Open(dir, &pdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for id, name := range map[int64]string{1: "alice", 2: "bob", 3: "carol"} {
		b.Set(key1(nil, pUser, id), encodeUser(nil, name, "h"+name[:1]), nil)
		b.Set(keyStr(nil, pUserName, name), appendInt(nil, id), nil)
	}
	b.Set(key2(nil, pFriend, 1, 2), nil, nil)
	b.Set(key2(nil, pFriend, 2, 1), nil, nil)
	b.Set(key1(nil, pGroup, 1), binary.AppendVarint(appendStr(appendStr(nil, "g"), "desc"), 1), nil)
	b.Set(keyStr(nil, pGroupName, "g"), appendInt(nil, 1), nil)
	b.Set(key2(nil, pMember, 1, 1), []byte(clusterchat.RoleCreator), nil)
	b.Set(key2(nil, pMember, 1, 2), []byte(clusterchat.RoleNormal), nil)
	b.Set(key2(nil, pUserGroup, 1, 1), nil, nil)
	b.Set(key2(nil, pUserGroup, 2, 1), nil, nil)
	now := time.Now().UnixMilli()
	for _, m := range []*clusterchat.Message{
		{ID: 1, Conv: "g:1", Seq: 1, From: 1, FromName: "alice", GroupID: 1, Body: "hi"},
		{ID: 2, Conv: "g:1", Seq: 2, From: 2, FromName: "bob", GroupID: 1, Body: "yo"},
		{ID: 3, Conv: "d:1:2", Seq: 1, From: 1, FromName: "alice", To: 2, Body: "dm"},
	} {
		b.Set(msgKey(nil, m.Conv, m.Seq), encodeMsg(nil, m, now), nil)
	}
	b.Set(metaMsgID, appendInt(nil, 3), nil)
	for _, c := range []struct {
		uid             int64
		conv            string
		delivered, read int64
	}{{1, "g:1", 0, 0}, {1, "d:1:2", 0, 0}, {2, "g:1", 1, 1}, {2, "d:1:2", 0, 0}} {
		b.Set(keyIntStr(nil, pCursor, c.uid, c.conv), cursorVal(nil, c.delivered, c.read), nil)
	}
	if err := b.Commit(pdb.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckMigrated(t, s)
}
