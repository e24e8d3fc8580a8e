package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// reqCtx is the context of one request: it ends Config.RequestTimeout after the
// request began, like context.WithDeadline, but the timer behind that is
// made only if something asks for the deadline or waits on it (a store or
// presence call). Most chat requests touch only caches and the committer's
// queue: they then cost no timer and no cancel func, which were the top
// allocation per request.
type reqCtx struct {
	deadline time.Time
	once     sync.Once
	ctx      context.Context
	cancel   context.CancelFunc
	ended    atomic.Bool
}

func newReqCtx(timeout time.Duration) *reqCtx {
	return &reqCtx{deadline: time.Now().Add(timeout)}
}

func (r *reqCtx) real() context.Context {
	r.once.Do(func() { r.ctx, r.cancel = context.WithDeadline(context.Background(), r.deadline) })
	return r.ctx
}

// Deadline implements context.Context.
func (r *reqCtx) Deadline() (time.Time, bool) { return r.deadline, true }

// Done implements context.Context.
func (r *reqCtx) Done() <-chan struct{} { return r.real().Done() }

// Err implements context.Context without making the timer.
func (r *reqCtx) Err() error {
	if r.ended.Load() {
		return context.Canceled
	}
	if !time.Now().Before(r.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// Value implements context.Context: a request carries no values.
func (r *reqCtx) Value(any) any { return nil }

// canceled is what a reqCtx is once its request ended without a timer.
var canceled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// end releases the timer, if one was made; the context is done from now on.
func (r *reqCtx) end() {
	r.ended.Store(true)
	r.once.Do(func() { r.ctx = canceled })
	if r.cancel != nil {
		r.cancel()
	}
}
