package cluster

import (
	"sync"
	"sync/atomic"
	"time"
)

// queue holds the changes one link has not yet sent. push never blocks: it
// runs in the table's change hook, under a shard lock, on the request path.
// When the queue is full the link is marked for a full resync instead (the
// peer gets the whole table again, which carries every set the dropped
// changes held; a dropped delete lives on at the peer until its idle
// timeout).
type queue struct {
	mu     sync.Mutex
	items  []change
	limit  int
	since  time.Time // when items[0] was queued
	resync bool
	now    func() time.Time
	wake   chan struct{} // capacity 1: "there is work"

	overflows atomic.Uint64
}

func newQueue(limit int, now func() time.Time) *queue {
	return &queue{limit: limit, now: now, wake: make(chan struct{}, 1)}
}

// push queues c, or marks the link for a resync when the queue is full.
func (q *queue) push(c change) {
	q.mu.Lock()
	switch {
	case q.resync && len(q.items) >= q.limit:
		// Already resyncing: the table itself will be sent.
	case len(q.items) >= q.limit:
		q.items = q.items[:0]
		q.resync = true
		q.overflows.Add(1)
	default:
		if len(q.items) == 0 {
			q.since = q.now()
		}
		q.items = append(q.items, c)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pushAll queues every item, or marks the link for a resync when they do
// not fit.
func (q *queue) pushAll(items []change) {
	q.mu.Lock()
	switch {
	case q.resync && len(q.items)+len(items) > q.limit:
	case len(q.items)+len(items) > q.limit:
		q.items = q.items[:0]
		q.resync = true
		q.overflows.Add(1)
	default:
		if len(q.items) == 0 {
			q.since = q.now()
		}
		q.items = append(q.items, items...)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// dropLimits removes the limit records waiting (a limit snapshot
// supersedes them).
func (q *queue) dropLimits() {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.items[:0]
	for _, c := range q.items {
		if c.lim.Kind == 0 {
			kept = append(kept, c)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
}

// take returns the queued changes (reusing spare's memory for the next
// ones), when the oldest was queued, and whether a full resync is due
// (clearing that mark).
func (q *queue) take(spare []change) (items []change, since time.Time, resync bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items, since, resync = q.items, q.since, q.resync
	clear(spare[:cap(spare)])
	q.items, q.resync = spare[:0], false
	return items, since, resync
}

// markResync asks for a full resync (a new connection, a lost store).
func (q *queue) markResync() {
	q.mu.Lock()
	q.resync = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pending returns how many changes wait and since when.
func (q *queue) pending() (int, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), q.since
}
