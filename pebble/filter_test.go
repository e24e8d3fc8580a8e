package pebble

import (
	"strconv"
	"testing"
)

// TestCmidFilter checks the property the store relies on: no false
// negatives, and few false positives at the planned size.
func TestCmidFilter(t *testing.T) {
	const n = 100000
	f := newCmidFilter(n)
	key := func(i int) []byte { return keyIntStr(nil, pCMID, int64(i%97+1), "dev-"+strconv.Itoa(i)) }
	for i := range n {
		f.add(key(i))
	}
	for i := range n {
		if !f.mayContain(key(i)) {
			t.Fatalf("false negative for key %d", i)
		}
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if f.mayContain(key(i)) {
			fp++
		}
	}
	if fp > n/100 {
		t.Errorf("%d false positives in %d lookups", fp, n)
	}
}
