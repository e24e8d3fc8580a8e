package bench

import "math/bits"

// Histogram records latencies in microseconds in log-linear buckets (64 per
// power of two, about 1.5% precision; exact below 128 us), like an HDR
// histogram without its dependency. It is not safe for concurrent use: each
// reader goroutine owns one and they are merged at the end.
type Histogram struct {
	counts []uint64
	n      uint64
	max    int64
}

const (
	subBits  = 6
	subCount = 1 << subBits
	// 2^34 us is over four hours: anything beyond is clamped.
	histBuckets = (34 + 2) * subCount
)

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits - 1
	i := (shift+1)*subCount + int(v>>shift) - subCount
	return min(i, histBuckets-1)
}

// bucketValue is the highest value that falls in bucket i.
func bucketValue(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	mant := int64(i%subCount + subCount)
	return (mant+1)<<shift - 1
}

// Record adds one latency in microseconds.
func (h *Histogram) Record(us int64) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	h.counts[bucketOf(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Quantile returns the value at quantile q (0..1), in microseconds, never
// more than the largest value recorded; 0 when empty.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketValue(i), h.max)
		}
	}
	return h.max
}

// Max is the largest recorded value.
func (h *Histogram) Max() int64 { return h.max }
