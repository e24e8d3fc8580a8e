// Package pebble implements clusterchat.Store on Pebble, an embedded LSM
// key-value store (github.com/cockroachdb/pebble/v2), for a server that runs
// as one process and wants the cheapest possible Append.
//
// Durability: every write is one Pebble batch committed through the WAL.
// By default (Options.Sync false) a commit is written to the WAL file (handed
// to the kernel) before the call returns, but fsynced only about once per
// SyncInterval: like SQLite's synchronous=NORMAL in WAL mode, it survives a
// crash or SIGKILL of the process, and a power loss or kernel crash may lose
// the commits of the last interval (never corrupt older ones). Options.Sync
// fsyncs every commit. See walFS for how (Pebble's own NoSync keeps recent
// commits in the process's memory, which a SIGKILL would lose).
//
// Layout: see keys.go. Messages are keyed by (conversation, seq), so Since
// and Before are range scans; a cmid index gives deduplication; a cursor row
// per (user, conversation) lists the user's conversations for Convs and
// Undelivered.
//
// Concurrency: every write goes through Store.wmu, so writes are serialized
// and the store keeps its counters (last user, group and message ids, the
// last seq of each conversation) in memory; they are only valid because one
// process owns the directory (Pebble locks it). Reads run beside the writer
// on Pebble iterators, each a consistent snapshot. Lock order: life, then
// wmu.
package pebble

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"clusterchat"

	pdb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

var _ clusterchat.Store = (*Store)(nil)

// Options tunes a Store. The zero value is the default of Open.
type Options struct {
	// Sync fsyncs the WAL on every commit: durable against power loss, at
	// the price of one fsync per write call.
	Sync bool
	// SyncInterval bounds how old an unsynced commit can get when Sync is
	// false (default 1s).
	SyncInterval time.Duration
	// MemTableSize is the size of Pebble's memtable, and so of a WAL file
	// (default 32 MiB).
	MemTableSize uint64
	// CacheSize is the block cache (default 64 MiB), on top of the
	// memtables (up to 4 of MemTableSize).
	CacheSize int64
}

// Store is a clusterchat.Store on a Pebble directory. It is safe for
// concurrent use by the goroutines of one process.
type Store struct {
	dir    string
	logger *slog.Logger
	db     *pdb.DB
	fs     *walFS

	// life makes Close wait for the calls in progress: each call holds a
	// read lock, Close takes the write lock.
	life   sync.RWMutex
	closed bool

	// wmu serializes every write and guards everything below it.
	wmu       sync.Mutex
	lastUser  int64
	lastGroup int64
	lastMsgID int64
	seqs      map[string]int64 // conversation -> last committed seq, loaded on first use
	// Append's scratch space, reused by every call.
	pending map[string]int64 // seqs assigned by the batch in progress
	inBatch map[cmidRef]*clusterchat.Message
	reads   map[readRef]readMove // senders' cursors the batch in progress raises
	cmids   *cmidFilter          // every stored cmid key; a miss proves a message new
	kbuf    []byte
	vbuf    []byte
	kbuf2   []byte

	opts *pdb.Options // for reopening after a failed write

	// broken is set when a write to the WAL failed (a full or failing
	// disk): see markBroken. Every call is refused with EUNAVAILABLE until
	// recoverLoop has reopened the database.
	broken     atomic.Bool
	recovering sync.WaitGroup

	dirty     chan struct{} // a commit awaits the periodic fsync (capacity 1)
	closeOnce sync.Once
	closeErr  error
	quit      chan struct{}
	done      chan struct{}
}

// cmidRef identifies a message by its sender and client id.
type cmidRef struct {
	from int64
	cmid string
}

// Open opens (creating it if needed) the store in directory dir, with the
// default Options. Close releases it.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	return OpenOptions(dir, logger, Options{})
}

// OpenOptions is Open with tuning.
func OpenOptions(dir string, logger *slog.Logger, o Options) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if dir == "" {
		return nil, clusterchat.Errorf(clusterchat.EINVALID, "pebble: empty directory name")
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	s := &Store{
		dir:     dir,
		logger:  logger.With("component", "pebble"),
		fs:      &walFS{FS: vfs.Default, syncAll: o.Sync},
		seqs:    make(map[string]int64),
		pending: make(map[string]int64, 4),
		inBatch: make(map[cmidRef]*clusterchat.Message),
		reads:   make(map[readRef]readMove, 4),
		dirty:   make(chan struct{}, 1),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	// Room for memtables being flushed while another fills, so that a
	// burst does not stall commits behind a flush.
	const memTables = 4
	opts := &pdb.Options{
		FS:     s.fs,
		Logger: pebbleLogger{s.logger},
		// Pebble reserves the memory of its memtables in the block cache:
		// a cache no bigger than the memtables caches nothing (every read
		// goes to the file), so they are added on top.
		CacheSize:                   o.CacheSize + int64(o.MemTableSize)*memTables,
		MemTableSize:                o.MemTableSize,
		MemTableStopWritesThreshold: memTables,
		FormatMajorVersion:          pdb.FormatNewest,
		EventListener: &pdb.EventListener{
			WriteStallBegin: func(info pdb.WriteStallBeginInfo) {
				s.logger.Warn("write stall", "reason", info.Reason)
			},
			WriteStallEnd: func() { s.logger.Info("write stall ended") },
			DiskSlow: func(info pdb.DiskSlowInfo) {
				s.logger.Warn("disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			},
		},
	}
	// Bloom filters on every level: most point lookups are misses (a new
	// cmid, a free name) and a filter answers them without reading blocks.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].FilterType = pdb.TableFilter
	}
	s.opts = opts
	db, err := pdb.Open(dir, opts)
	if err != nil {
		return nil, s.fail("open "+dir, err)
	}
	s.db = db
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if o.Sync {
		close(s.done)
	} else {
		go s.syncer(o.SyncInterval)
	}
	return s, nil
}

// load recovers the id counters from the last keys of their tables and the
// meta row.
func (s *Store) load() error {
	var err error
	if s.lastUser, err = s.lastID(pUser); err != nil {
		return err
	}
	if s.lastGroup, err = s.lastID(pGroup); err != nil {
		return err
	}
	switch v, ok, err := s.get(metaLastGroup); {
	case err != nil:
		return s.fail("load last group id", err)
	case ok && len(v) != 8:
		return fmt.Errorf("pebble: load last group id: %w", errCorrupt)
	case ok:
		s.lastGroup = max(s.lastGroup, getInt(v))
	}
	v, ok, err := s.get(metaMsgID)
	if err != nil {
		return s.fail("load last message id", err)
	}
	if ok {
		if len(v) != 8 {
			return fmt.Errorf("pebble: load last message id: %w", errCorrupt)
		}
		s.lastMsgID = getInt(v)
	}
	if err := s.indexTokens(); err != nil {
		return err
	}
	return s.loadCmidFilter()
}

// lastID returns the id in the last key of table p (0: empty table).
func (s *Store) lastID(p byte) (int64, error) {
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		return 0, s.fail("load ids", err)
	}
	defer it.Close()
	if !it.Last() {
		return 0, s.fail("load ids", it.Error())
	}
	if len(it.Key()) != 9 {
		return 0, fmt.Errorf("pebble: load ids: %w", errCorrupt)
	}
	return getInt(it.Key()[1:]), nil
}

// syncer makes the WAL reach the disk at most an interval after a commit:
// when there were commits, it asks walFS for a real fsync and makes the WAL
// sync with an empty record.
func (s *Store) syncer(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		select {
		case <-s.dirty:
		default:
			continue
		}
		if s.broken.Load() {
			continue // reopening replays the WAL; nothing to sync
		}
		if err := s.enter(); err != nil {
			if s.closedNow() {
				return
			}
			continue
		}
		s.fs.requestFsync()
		if err := s.syncWAL(); err != nil {
			s.logger.Error("periodic WAL sync failed", "err", err)
		}
		s.leave()
	}
}

// Close stops the syncer, waits for the calls in progress and closes the
// database. Later calls return EUNAVAILABLE.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		// A reopen may wait for disk space indefinitely (Pebble's Open): a
		// shutdown does not wait for it longer than this; if it completes
		// later, it closes what it opened.
		recovered := make(chan struct{})
		go func() { s.recovering.Wait(); close(recovered) }()
		select {
		case <-recovered:
		case <-time.After(10 * time.Second):
			s.logger.Warn("closing while the database is still being reopened")
		}
		s.life.Lock()
		defer s.life.Unlock()
		s.closed = true
		if s.db == nil {
			return // broken, and not reopened
		}
		// The unsynced tail of the WAL is in the kernel already; an fsync
		// here makes a clean shutdown durable against power loss too.
		s.fs.requestFsync()
		if err := s.syncWAL(); err != nil {
			s.closeErr = s.fail("close", err)
		}
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("pebble: close %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

// enter starts a call: EUNAVAILABLE once the store is closed. Every enter
// that returns nil is paired with a leave.
func (s *Store) enter() error {
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store closed")
	}
	if s.broken.Load() {
		s.life.RUnlock()
		return errBroken
	}
	return nil
}

// closedNow tells whether Close has begun.
func (s *Store) closedNow() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// errBroken refuses calls while the database is reopened after a failed
// write.
var errBroken = clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store unavailable: a disk write failed; recovering")

// markBroken takes the database out of service after a failed WAL write
// and starts recoverLoop. Pebble cannot go on from such a failure: its WAL
// writer keeps the error and drops everything after it, and the failed
// batch is applied to the memtable all the same (readable, though its
// caller was told it failed, and its seqs and ids would be handed out
// again). Reopening replays the WAL as it is on disk: every commit that
// returned success, nothing of the failed one. The caller holds a read lock
// of life (enter).
func (s *Store) markBroken(err error) {
	if !s.broken.CompareAndSwap(false, true) {
		return
	}
	s.logger.Error("a database write failed; refusing calls until it is reopened", "err", err)
	s.recovering.Add(1)
	go s.recoverLoop()
}

// recoverLoop reopens the database with backoff until it works (the disk
// has room again) or the Store is closed.
func (s *Store) recoverLoop() {
	defer s.recovering.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		if err := s.reopen(); err != nil {
			s.logger.Warn("reopening the database failed; will retry", "err", err, "retry_in", delay)
			t.Reset(delay)
			continue
		}
		s.logger.Info("database reopened after a failed write")
		return
	}
}

// reopen closes the broken database and opens it again, reloading the
// in-memory counters from what is on disk. Pebble's Open replays the WAL
// and flushes it, which waits for room on the disk: it runs without the
// locks, so that calls meanwhile are refused at once (broken) instead of
// waiting, and Close need not wait for it (see Close).
func (s *Store) reopen() error {
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	if s.db != nil {
		// It may fail (it flushes through the broken WAL writer): the data
		// that counts is on disk already.
		if err := s.db.Close(); err != nil {
			s.logger.Warn("closing the broken database", "err", err)
		}
		s.db = nil
	}
	s.life.Unlock()

	db, err := pdb.Open(s.dir, s.opts)
	if err != nil {
		return err
	}
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return db.Close()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.db = db
	s.seqs = make(map[string]int64)
	if err := s.load(); err != nil {
		db.Close()
		s.db = nil
		return err
	}
	s.broken.Store(false)
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// fail turns an error into the one to return: clusterchat errors and
// context errors as they are, I/O errors (a full or failing disk) as
// EUNAVAILABLE, anything else as a plain error.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var ce *clusterchat.Error
	if errors.As(err, &ce) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pebble: %s: %w", op, err)
	}
	var pe *fs.PathError
	var errno syscall.Errno
	if errors.As(err, &pe) || errors.As(err, &errno) {
		s.logger.Error("database unavailable", "op", op, "err", err)
		return clusterchat.Errorf(clusterchat.EUNAVAILABLE, "store unavailable")
	}
	s.logger.Error("database error", "op", op, "err", err)
	return fmt.Errorf("pebble: %s: %w", op, err)
}

// get returns a copy of the value of key; ok is false if there is none.
func (s *Store) get(key []byte) (v []byte, ok bool, err error) {
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pdb.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v = slices.Clone(val)
	return v, true, closer.Close()
}

// has tells whether key exists.
func (s *Store) has(key []byte) (bool, error) {
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pdb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, closer.Close()
}

// write runs fn under wmu with a fresh batch, and commits the batch if fn
// succeeds and put something in it. after, if fn set it, runs once the
// commit succeeded (still under wmu): that is where counters move.
func (s *Store) write(ctx context.Context, op string, fn func(b *pdb.Batch) (after func(), err error)) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := ctx.Err(); err != nil {
		return s.fail(op, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	after, err := fn(b)
	if err != nil {
		return s.fail(op, err)
	}
	if !b.Empty() {
		if err := s.commit(b); err != nil {
			return s.fail(op, err)
		}
	}
	if after != nil {
		after()
	}
	return nil
}

// commit commits b durably against a process crash: pdb.Sync, so that the
// WAL writer hands the record to the kernel before returning (walFS decides
// whether that includes an fsync). The caller holds wmu.
func (s *Store) commit(b *pdb.Batch) error {
	if err := s.apply(b); err != nil {
		return err
	}
	if !s.fs.syncAll {
		select {
		case s.dirty <- struct{}{}:
		default:
		}
	}
	return nil
}

// syncWAL makes the WAL sync (an empty record committed with pdb.Sync, what
// DB.LogData does), through apply.
func (s *Store) syncWAL() error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.LogData(nil, nil); err != nil {
		return err
	}
	return s.apply(b)
}

// apply commits b with pdb.Sync. If that fails the database is done for
// (a full or failing disk), though not the process: a failed WAL write
// makes Pebble call Fatalf ("fatal commit error"), whose panic is caught
// here, and markBroken takes the database out of service until it is
// reopened; the caller gets EUNAVAILABLE.
func (s *Store) apply(b *pdb.Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatalPanic)
			if !ok {
				panic(r)
			}
			s.markBroken(f)
			err = errBroken
		}
	}()
	if err := b.Commit(pdb.Sync); err != nil {
		s.markBroken(err)
		return errBroken
	}
	return nil
}

// iter opens an iterator over [lower, upper).
func (s *Store) iter(lower, upper []byte) (*pdb.Iterator, error) {
	return s.db.NewIter(&pdb.IterOptions{LowerBound: lower, UpperBound: upper})
}

// CreateUser implements clusterchat.Store. Names are unique through the
// name index, checked and set under wmu.
func (s *Store) CreateUser(ctx context.Context, name, passHash string) (int64, error) {
	var id int64
	err := s.write(ctx, "create user", func(b *pdb.Batch) (func(), error) {
		nk := keyStr(nil, pUserName, name)
		taken, err := s.has(nk)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, clusterchat.Errorf(clusterchat.EEXISTS, "user name %q is taken", name)
		}
		id = s.lastUser + 1
		b.Set(key1(nil, pUser, id), encodeUser(nil, name, passHash), nil)
		b.Set(nk, appendInt(nil, id), nil)
		return func() { s.lastUser = id }, nil
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// User implements clusterchat.Store.
func (s *Store) User(ctx context.Context, id int64) (*clusterchat.User, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	u := &clusterchat.User{ID: id}
	ok, err := s.user(u)
	if err != nil {
		return nil, s.fail("user", err)
	}
	if !ok {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no user %d", id)
	}
	return u, nil
}

// user fills u (by u.ID); ok is false if there is no such user.
func (s *Store) user(u *clusterchat.User) (ok bool, err error) {
	v, ok, err := s.get(key1(nil, pUser, u.ID))
	if err != nil || !ok {
		return false, err
	}
	return true, decodeUser(v, u)
}

// userName returns the name of user id ("" if there is none: users are
// never deleted, so only a corrupt store lacks one).
func (s *Store) userName(id int64) (string, error) {
	u := clusterchat.User{ID: id}
	_, err := s.user(&u)
	return u.Name, err
}

// mustExist returns ENOTFOUND if key is missing.
func (s *Store) mustExist(key []byte, what string, id int64) error {
	ok, err := s.has(key)
	if err != nil {
		return err
	}
	if !ok {
		return clusterchat.Errorf(clusterchat.ENOTFOUND, "no %s %d", what, id)
	}
	return nil
}

// AddFriend implements clusterchat.Store. As on SQLite, a == b is EEXISTS
// (the two rows are the same row).
func (s *Store) AddFriend(ctx context.Context, a, b int64) error {
	return s.write(ctx, "add friend", func(bt *pdb.Batch) (func(), error) {
		if err := s.mustUsers(a, b); err != nil {
			return nil, err
		}
		k := key2(nil, pFriend, a, b)
		dup, err := s.has(k)
		if err != nil {
			return nil, err
		}
		if dup || a == b {
			return nil, clusterchat.Errorf(clusterchat.EEXISTS, "users %d and %d are already friends", a, b)
		}
		bt.Set(k, nil, nil)
		bt.Set(key2(nil, pFriend, b, a), nil, nil)
		return nil, nil
	})
}

// Friends implements clusterchat.Store.
func (s *Store) Friends(ctx context.Context, uid int64) ([]clusterchat.User, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	ids, err := s.scanIDs(key1(nil, pFriend, uid))
	if err != nil {
		return nil, s.fail("friends", err)
	}
	var out []clusterchat.User
	for _, id := range ids {
		name, err := s.userName(id)
		if err != nil {
			return nil, s.fail("friends", err)
		}
		out = append(out, clusterchat.User{ID: id, Name: name})
	}
	return out, nil
}

// scanIDs returns the be64 ids that follow prefix in the keys of its range,
// in ascending order.
func (s *Store) scanIDs(prefix []byte) ([]int64, error) {
	it, err := s.iter(prefix, prefixEnd(prefix))
	if err != nil {
		return nil, err
	}
	var ids []int64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			it.Close()
			return nil, errCorrupt
		}
		ids = append(ids, getInt(k[len(prefix):]))
	}
	return ids, errors.Join(it.Error(), it.Close())
}

// CreateGroup implements clusterchat.Store.
func (s *Store) CreateGroup(ctx context.Context, creator int64, name, desc string) (int64, error) {
	return s.NewGroup(ctx, creator, clusterchat.Group{Name: name, Desc: desc})
}

// NewGroup implements clusterchat.Store.
func (s *Store) NewGroup(ctx context.Context, creator int64, g clusterchat.Group) (int64, error) {
	if g.History == "" {
		g.History = clusterchat.HistoryJoined
	}
	var gid int64
	err := s.write(ctx, "create group", func(b *pdb.Batch) (func(), error) {
		if err := s.mustExist(key1(nil, pUser, creator), "user", creator); err != nil {
			return nil, err
		}
		nk := keyStr(nil, pGroupName, g.Name)
		taken, err := s.has(nk)
		if err != nil {
			return nil, err
		}
		if taken {
			return nil, clusterchat.Errorf(clusterchat.EEXISTS, "group name %q is taken", g.Name)
		}
		gid = s.lastGroup + 1
		b.Set(key1(nil, pGroup, gid), encodeGroup(nil, &g, creator), nil)
		b.Set(nk, appendInt(nil, gid), nil)
		b.Set(metaLastGroup, appendInt(nil, gid), nil)
		b.Set(key2(nil, pMember, gid, creator), memberVal(clusterchat.RoleCreator, 0), nil)
		b.Set(key2(nil, pUserGroup, creator, gid), nil, nil)
		// Group ids are never reused, so the conversation has no messages
		// yet: the creator's cursors start at 0.
		b.Set(keyIntStr(nil, pCursor, creator, clusterchat.GroupConv(gid)), cursorVal(nil, 0, 0), nil)
		return func() { s.lastGroup = gid }, nil
	})
	if err != nil {
		return 0, err
	}
	return gid, nil
}

// JoinGroup implements clusterchat.Store.
func (s *Store) JoinGroup(ctx context.Context, gid, uid int64) (bool, error) {
	var added bool
	err := s.write(ctx, "join group", func(b *pdb.Batch) (func(), error) {
		if err := s.mustExist(key1(nil, pGroup, gid), "group", gid); err != nil {
			return nil, err
		}
		if err := s.mustExist(key1(nil, pUser, uid), "user", uid); err != nil {
			return nil, err
		}
		mk := key2(nil, pMember, gid, uid)
		member, err := s.has(mk)
		if err != nil || member {
			return nil, err
		}
		conv := clusterchat.GroupConv(gid)
		seq, err := s.lastSeq(conv)
		if err != nil {
			return nil, err
		}
		b.Set(mk, memberVal(clusterchat.RoleNormal, seq), nil)
		b.Set(key2(nil, pUserGroup, uid, gid), nil, nil)
		b.Delete(key2(nil, pDeparted, gid, uid), nil)
		b.Delete(key2(nil, pPending, gid, uid), nil)
		b.Delete(key2(nil, pUserPend, uid, gid), nil)
		b.Set(keyIntStr(nil, pCursor, uid, conv), cursorVal(nil, seq, seq), nil)
		added = true
		return nil, nil
	})
	if err != nil {
		return false, err
	}
	return added, nil
}

// Group implements clusterchat.Store.
func (s *Store) Group(ctx context.Context, gid int64) (*clusterchat.Group, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	g := &clusterchat.Group{ID: gid}
	ok, err := s.group(g)
	if err != nil {
		return nil, s.fail("group", err)
	}
	if !ok {
		return nil, clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	return g, nil
}

// group fills g (by g.ID) with its members; ok is false if there is no such
// group.
func (s *Store) group(g *clusterchat.Group) (ok bool, err error) {
	v, ok, err := s.get(key1(nil, pGroup, g.ID))
	if err != nil || !ok {
		return false, err
	}
	if _, err := decodeGroup(v, g); err != nil {
		return false, err
	}
	prefix := key1(nil, pMember, g.ID)
	it, err := s.iter(prefix, prefixEnd(prefix))
	if err != nil {
		return false, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefix)+8 {
			it.Close()
			return false, errCorrupt
		}
		role, _, err := parseMember(it.Value())
		if err != nil {
			it.Close()
			return false, err
		}
		g.Members = append(g.Members, clusterchat.Member{UserID: getInt(k[len(prefix):]), Role: role})
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return false, err
	}
	for i := range g.Members {
		if g.Members[i].Name, err = s.userName(g.Members[i].UserID); err != nil {
			return false, err
		}
	}
	return true, nil
}

// UserGroups implements clusterchat.Store.
func (s *Store) UserGroups(ctx context.Context, uid int64) ([]clusterchat.Group, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	gids, err := s.scanIDs(key1(nil, pUserGroup, uid))
	if err != nil {
		return nil, s.fail("user groups", err)
	}
	var out []clusterchat.Group
	for _, gid := range gids {
		g := clusterchat.Group{ID: gid}
		ok, err := s.group(&g)
		if err != nil {
			return nil, s.fail("user groups", err)
		}
		if ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// Role implements clusterchat.Store.
func (s *Store) Role(ctx context.Context, gid, uid int64) (string, error) {
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	ok, err := s.has(key1(nil, pGroup, gid))
	if err != nil {
		return "", s.fail("role", err)
	}
	if !ok {
		return "", clusterchat.Errorf(clusterchat.ENOTFOUND, "no group %d", gid)
	}
	v, _, err := s.get(key2(nil, pMember, gid, uid))
	if err != nil {
		return "", s.fail("role", err)
	}
	role, _, err := parseMember(v)
	return role, s.fail("role", err)
}

// lastSeq returns the last committed seq of conv, loading it into the cache
// on first use. The caller holds wmu.
func (s *Store) lastSeq(conv string) (int64, error) {
	if seq, ok := s.seqs[conv]; ok {
		return seq, nil
	}
	seq, err := s.lastSeqOf(conv)
	if err != nil {
		return 0, err
	}
	s.seqs[conv] = seq // committed state: valid whatever the caller's batch becomes
	return seq, nil
}

// lastSeqOf reads the last seq of conv from the database (0: no message).
func (s *Store) lastSeqOf(conv string) (int64, error) {
	prefix := msgPrefix(nil, conv)
	it, err := s.iter(prefix, prefixEnd(prefix))
	if err != nil {
		return 0, err
	}
	var seq int64
	if it.Last() {
		seq = getInt(it.Key()[len(it.Key())-8:])
	}
	return seq, errors.Join(it.Error(), it.Close())
}

// Append implements clusterchat.Store: one batch, one commit. Seqs come from
// the in-memory cache, ids from lastMsgID; both move only once the commit
// succeeded.
func (s *Store) Append(ctx context.Context, msgs []*clusterchat.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := ctx.Err(); err != nil {
		return s.fail("append", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	clear(s.pending)
	clear(s.inBatch)
	clear(s.reads)

	b := s.db.NewBatch()
	defer b.Close()
	id, err := s.appendBatch(b, msgs)
	if err == nil && id != s.lastMsgID {
		s.kbuf = appendInt(s.kbuf[:0], id)
		b.Set(metaMsgID, s.kbuf, nil)
		err = s.commit(b)
	}
	if err != nil {
		for _, m := range msgs {
			m.ID, m.Seq, m.Time, m.Dup = 0, 0, time.Time{}, false
		}
		return s.fail("append", err)
	}
	s.lastMsgID = id
	for conv, seq := range s.pending {
		s.seqs[conv] = seq
	}
	return nil
}

// appendBatch fills b with msgs and returns the last id it assigned. The
// caller holds wmu.
func (s *Store) appendBatch(b *pdb.Batch, msgs []*clusterchat.Message) (int64, error) {
	now := time.Now().UnixMilli()
	id := s.lastMsgID
	for _, m := range msgs {
		if m.CMID != "" {
			ref := cmidRef{m.From, m.CMID}
			if orig, ok := s.inBatch[ref]; ok {
				*m = *orig
				m.Dup = true
				continue
			}
			s.kbuf = keyIntStr(s.kbuf, pCMID, m.From, m.CMID)
			if s.cmids.mayContain(s.kbuf) {
				dup, err := s.stored(s.kbuf, m)
				if err != nil {
					return 0, err
				}
				if dup {
					continue
				}
			}
			// Added before the commit: if it fails, the key is a false
			// positive, which costs one lookup later and nothing else.
			s.cmids.add(s.kbuf)
			s.inBatch[ref] = m
		}
		last, ok := s.pending[m.Conv]
		if !ok {
			var err error
			if last, err = s.lastSeq(m.Conv); err != nil {
				return 0, err
			}
		}
		id++
		m.ID, m.Seq, m.Time, m.Dup = id, last+1, time.UnixMilli(now), false
		s.pending[m.Conv] = m.Seq
		s.kbuf2 = msgKey(s.kbuf2, m.Conv, m.Seq)
		s.vbuf = encodeMsg(s.vbuf[:0], m, now)
		b.Set(s.kbuf2, s.vbuf, nil)
		if m.CMID != "" {
			b.Set(s.kbuf, s.kbuf2, nil) // s.kbuf still holds the cmid key
		}
		if last == 0 && !m.IsGroup() {
			// First message of a 1:1 conversation: both users become
			// participants. No cursor row of it can exist yet (they are
			// only created here), so these are plain sets.
			if a, bb, _, ok := clusterchat.ParseConv(m.Conv); ok {
				s.vbuf = cursorVal(s.vbuf, 0, 0)
				for _, u := range []int64{a, bb} {
					s.kbuf2 = keyIntStr(s.kbuf2, pCursor, u, m.Conv)
					b.Set(s.kbuf2, s.vbuf, nil)
					s.reads[readRef{u, m.Conv}] = readMove{fresh: true}
				}
			}
		}
		r := s.reads[readRef{m.From, m.Conv}]
		r.seq = m.Seq
		s.reads[readRef{m.From, m.Conv}] = r
	}
	return id, s.raiseReads(b)
}

// readRef is a user's cursor of one conversation.
type readRef struct {
	user int64
	conv string
}

// readMove is where a batch takes a sender's read cursor: seq is its last
// message in the conversation (0: it sent none), fresh that the batch made
// the cursor row, at (0, 0).
type readMove struct {
	seq   int64
	fresh bool
}

// raiseReads adds to b the senders' read cursor moves of the batch: a
// sender has read its conversation up to its own last message (see
// clusterchat.Store.Append). A sender without a cursor row is not part of
// the conversation: skipped, as MarkRead would. The caller holds wmu, as
// mark does, so the rows read here cannot change before the batch commits.
func (s *Store) raiseReads(b *pdb.Batch) error {
	for k, r := range s.reads {
		if r.seq == 0 {
			continue
		}
		s.kbuf2 = keyIntStr(s.kbuf2, pCursor, k.user, k.conv)
		var delivered, read int64
		if !r.fresh {
			v, found, err := s.get(s.kbuf2)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			if delivered, read, err = parseCursor(v); err != nil {
				return err
			}
		}
		if read >= r.seq {
			continue
		}
		s.vbuf = cursorVal(s.vbuf, delivered, r.seq)
		b.Set(s.kbuf2, s.vbuf, nil)
	}
	return nil
}

// stored looks cmidKey up and, if a message is stored under it, fills m
// with that original and sets Dup.
func (s *Store) stored(cmidKey []byte, m *clusterchat.Message) (bool, error) {
	mk, ok, err := s.get(cmidKey)
	if err != nil || !ok {
		return false, err
	}
	v, ok, err := s.get(mk)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("cmid index points at missing message: %w", errCorrupt)
	}
	conv, seq, err := parseMsgKey(mk)
	if err != nil {
		return false, err
	}
	if err := decodeMsg(v, m); err != nil {
		return false, err
	}
	m.Conv, m.Seq, m.Dup = conv, seq, true
	return true, nil
}

// Since implements clusterchat.Store.
func (s *Store) Since(ctx context.Context, conv string, after int64, limit int) ([]*clusterchat.Message, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if after == math.MaxInt64 || limit == 0 {
		return nil, nil
	}
	prefix := msgPrefix(nil, conv)
	it, err := s.iter(msgKey(nil, conv, max(after+1, 0)), prefixEnd(prefix))
	if err != nil {
		return nil, s.fail("since", err)
	}
	var out []*clusterchat.Message
	for ok := it.First(); ok && (limit < 0 || len(out) < limit); ok = it.Next() {
		m, err := readMsg(it, conv)
		if err != nil {
			it.Close()
			return nil, s.fail("since", err)
		}
		out = append(out, m)
	}
	return out, s.fail("since", errors.Join(it.Error(), it.Close()))
}

// readMsg decodes the message under the iterator, of conversation conv.
func readMsg(it *pdb.Iterator, conv string) (*clusterchat.Message, error) {
	m := &clusterchat.Message{Conv: conv}
	k := it.Key()
	if len(k) < 8 {
		return nil, errCorrupt
	}
	m.Seq = getInt(k[len(k)-8:])
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, err
	}
	return m, decodeMsg(v, m)
}

// Before implements clusterchat.Store.
func (s *Store) Before(ctx context.Context, conv string, before int64, limit int) ([]*clusterchat.Message, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if before <= 0 {
		before = math.MaxInt64
	}
	if limit == 0 {
		return nil, nil
	}
	prefix := msgPrefix(nil, conv)
	it, err := s.iter(prefix, msgKey(nil, conv, before))
	if err != nil {
		return nil, s.fail("before", err)
	}
	var out []*clusterchat.Message
	for ok := it.Last(); ok && (limit < 0 || len(out) < limit); ok = it.Prev() {
		m, err := readMsg(it, conv)
		if err != nil {
			it.Close()
			return nil, s.fail("before", err)
		}
		out = append(out, m)
	}
	slices.Reverse(out)
	return out, s.fail("before", errors.Join(it.Error(), it.Close()))
}

// cursors returns uid's cursor rows, ordered by conversation.
func (s *Store) cursors(uid int64) ([]clusterchat.ConvState, error) {
	prefix := key1(nil, pCursor, uid)
	it, err := s.iter(prefix, prefixEnd(prefix))
	if err != nil {
		return nil, err
	}
	var out []clusterchat.ConvState
	for ok := it.First(); ok; ok = it.Next() {
		c := clusterchat.ConvState{Conv: string(it.Key()[len(prefix):])}
		v, err := it.ValueAndErr()
		if err == nil {
			c.Delivered, c.Read, err = parseCursor(v)
		}
		if err != nil {
			it.Close()
			return nil, err
		}
		out = append(out, c)
	}
	return out, errors.Join(it.Error(), it.Close())
}

// Convs implements clusterchat.Store.
func (s *Store) Convs(ctx context.Context, uid int64) ([]clusterchat.ConvState, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	out, err := s.cursors(uid)
	if err != nil {
		return nil, s.fail("convs", err)
	}
	for i := range out {
		if out[i].LastSeq, err = s.lastSeqOf(out[i].Conv); err != nil {
			return nil, s.fail("convs", err)
		}
	}
	return out, nil
}

// LastSeq implements clusterchat.Store: one seek to the end of conv's
// messages.
func (s *Store) LastSeq(ctx context.Context, conv string) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	seq, err := s.lastSeqOf(conv)
	if err != nil {
		return 0, s.fail("last seq", err)
	}
	return seq, nil
}

// Undelivered implements clusterchat.Store: the messages above the
// delivered cursor of each of uid's conversations (at most limit of each),
// merged by id.
func (s *Store) Undelivered(ctx context.Context, uid int64, limit int) ([]*clusterchat.Message, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	if limit == 0 {
		return nil, nil
	}
	convs, err := s.cursors(uid)
	if err != nil {
		return nil, s.fail("undelivered", err)
	}
	var out []*clusterchat.Message
	for _, c := range convs {
		if err := ctx.Err(); err != nil {
			return nil, s.fail("undelivered", err)
		}
		prefix := msgPrefix(nil, c.Conv)
		it, err := s.iter(msgKey(nil, c.Conv, c.Delivered+1), prefixEnd(prefix))
		if err != nil {
			return nil, s.fail("undelivered", err)
		}
		n := 0
		for ok := it.First(); ok && (limit < 0 || n < limit); ok = it.Next() {
			m, err := readMsg(it, c.Conv)
			if err != nil {
				it.Close()
				return nil, s.fail("undelivered", err)
			}
			if m.From != uid {
				out = append(out, m)
				n++
			}
		}
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return nil, s.fail("undelivered", err)
		}
	}
	slices.SortFunc(out, func(a, b *clusterchat.Message) int { return cmpInt(a.ID, b.ID) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// MarkDelivered implements clusterchat.Store.
func (s *Store) MarkDelivered(ctx context.Context, cursors []clusterchat.Cursor) error {
	return s.mark(ctx, "mark delivered", false, cursors)
}

// MarkRead implements clusterchat.Store.
func (s *Store) MarkRead(ctx context.Context, cursors []clusterchat.Cursor) error {
	return s.mark(ctx, "mark read", true, cursors)
}

// mark raises the cursors in one batch. A cursor row that does not exist is
// a conversation the user is not part of: ignored.
func (s *Store) mark(ctx context.Context, op string, read bool, cursors []clusterchat.Cursor) error {
	if len(cursors) == 0 {
		return nil
	}
	return s.write(ctx, op, func(b *pdb.Batch) (func(), error) {
		// Rows already raised by this call, so that two cursors of one
		// conversation see each other.
		seen := make(map[string][2]int64, len(cursors))
		for _, c := range cursors {
			k := keyIntStr(nil, pCursor, c.User, c.Conv)
			cur, ok := seen[string(k)]
			if !ok {
				v, found, err := s.get(k)
				if err != nil {
					return nil, err
				}
				if !found {
					continue
				}
				if cur[0], cur[1], err = parseCursor(v); err != nil {
					return nil, err
				}
			}
			next := cur
			next[0] = max(next[0], c.Seq)
			if read {
				next[1] = max(next[1], c.Seq)
			}
			seen[string(k)] = next
			if next != cur {
				b.Set(k, cursorVal(nil, next[0], next[1]), nil)
			}
		}
		return nil, nil
	})
}

// PutToken implements clusterchat.Store. ENOTFOUND if uid does not exist.
func (s *Store) PutToken(ctx context.Context, tokenHash string, uid int64, expires time.Time) error {
	return s.write(ctx, "put token", func(b *pdb.Batch) (func(), error) {
		if err := s.mustExist(key1(nil, pUser, uid), "user", uid); err != nil {
			return nil, err
		}
		b.Set(keyStr(nil, pToken, tokenHash), appendInt(appendInt(nil, uid), expires.UnixMilli()), nil)
		b.Set(keyIntStr(nil, pUserToken, uid, tokenHash), nil, nil)
		return nil, nil
	})
}

// TokenUser implements clusterchat.Store.
func (s *Store) TokenUser(ctx context.Context, tokenHash string) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	v, ok, err := s.get(keyStr(nil, pToken, tokenHash))
	if err != nil {
		return 0, s.fail("token", err)
	}
	if !ok || len(v) != 16 || getInt(v[8:]) <= time.Now().UnixMilli() {
		return 0, clusterchat.Errorf(clusterchat.EAUTH, "bad or expired token")
	}
	return getInt(v), nil
}

// Ping implements clusterchat.Store: a point read through the whole read
// path.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	_, err := s.has(metaMsgID)
	return s.fail("ping", err)
}

// pebbleLogger routes Pebble's log to slog: its chatter (WAL replay,
// flushes) at debug, its errors at error.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	if p.l.Enabled(context.Background(), slog.LevelDebug) {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Fatalf logs and panics: Pebble calls it on an invariant it cannot
// survive, and expects it not to return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic(fatalPanic("pebble: " + msg))
}

// fatalPanic is what Fatalf panics with, so that commit can tell Pebble's
// "fatal commit error" (a failed WAL write, on the committing goroutine)
// from any other panic.
type fatalPanic string

func (f fatalPanic) Error() string { return string(f) }

// Backup writes a consistent copy of the store, a Pebble directory that
// Open can use as is, to dest (which must not exist). It runs beside
// traffic: the copy is of one instant, with every commit before it (the WAL
// is flushed first) and none after.
func (s *Store) Backup(ctx context.Context, dest string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if err := s.db.Checkpoint(dest, pdb.WithFlushedWAL()); err != nil {
		return s.fail("backup", err)
	}
	return nil
}

var _ clusterchat.BackupStore = (*Store)(nil)
