package pebble

import (
	"hash/maphash"

	pdb "github.com/cockroachdb/pebble/v2"
)

// cmidFilter is an in-memory Bloom filter over every client message id key
// in the store. Nearly every append carries a new cmid, and proving it new
// through Pebble means a seek in each memtable and level: that lookup was a
// quarter of the server's CPU under load. The filter answers "certainly new"
// for almost all of them; only a "maybe" goes to the database. It is built
// at Open by scanning the cmid keys (keys only) and grows by insertion; as
// it fills, false positives rise and cost a lookup each, never a wrong
// answer.
type cmidFilter struct {
	bits []uint64
	seed maphash.Seed
}

const filterHashes = 6

func newCmidFilter(expected int) *cmidFilter {
	// ~16 bits per key keeps false positives under 0.1% at the expected
	// size; at least 16 Mbit (2 MiB) so a young store has room to grow, at
	// most 256 Mbit (32 MiB): past ~16M keys false positives rise.
	n := min(max(expected*16, 1<<24), 1<<28)
	return &cmidFilter{bits: make([]uint64, (n+63)/64), seed: maphash.MakeSeed()}
}

func (f *cmidFilter) positions(key []byte) (uint64, uint64) {
	h := maphash.Bytes(f.seed, key)
	return h, h>>32 | h<<32 | 1
}

func (f *cmidFilter) add(key []byte) {
	h1, h2 := f.positions(key)
	m := uint64(len(f.bits) * 64)
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) % m
		f.bits[b/64] |= 1 << (b % 64)
	}
}

func (f *cmidFilter) mayContain(key []byte) bool {
	h1, h2 := f.positions(key)
	m := uint64(len(f.bits) * 64)
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) % m
		if f.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// loadCmidFilter builds the filter from the cmid keys in the store.
func (s *Store) loadCmidFilter() error {
	it, err := s.db.NewIter(&pdb.IterOptions{LowerBound: []byte{pCMID}, UpperBound: []byte{pCMID + 1}})
	if err != nil {
		return s.fail("load cmid filter", err)
	}
	defer it.Close()
	// There are at most as many cmids as messages; room for twice that.
	s.cmids = newCmidFilter(int(min(2*s.lastMsgID, 1<<40)))
	for ok := it.First(); ok; ok = it.Next() {
		s.cmids.add(it.Key())
	}
	if err := it.Error(); err != nil {
		return s.fail("load cmid filter", err)
	}
	return nil
}
