package state

import "sync"

// lockQueue keeps, per session, the requests of this process waiting for its
// exclusive lock, first come first served: only the head of a line asks the
// store; the others wait for their turn. A release made through this process
// wakes the head at once; a lock held through another process (several
// services on one Redis or PostgreSQL) is polled.
type lockQueue struct {
	mu    sync.Mutex
	lines map[string]*line
}

type line struct {
	waiters []*waiter     // waiters[0] is the head
	wake    chan struct{} // a release seen by this process; capacity 1
}

type waiter struct {
	turn chan struct{} // closed when the waiter becomes the head
}

func newLockQueue() *lockQueue { return &lockQueue{lines: map[string]*line{}} }

// join puts a new waiter at the end of id's line.
func (q *lockQueue) join(id string) (*line, *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.lines[id]
	if l == nil {
		l = &line{wake: make(chan struct{}, 1)}
		q.lines[id] = l
	}
	w := &waiter{turn: make(chan struct{})}
	if len(l.waiters) == 0 {
		close(w.turn)
	}
	l.waiters = append(l.waiters, w)
	return l, w
}

// leave takes w out of the line; when w was the head the next waiter's turn
// comes.
func (q *lockQueue) leave(id string, l *line, w *waiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range l.waiters {
		if x != w {
			continue
		}
		l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
		if i == 0 && len(l.waiters) > 0 {
			close(l.waiters[0].turn)
			select { // the new head tries at once
			case l.wake <- struct{}{}:
			default:
			}
		}
		break
	}
	if len(l.waiters) == 0 {
		delete(q.lines, id)
	}
}

// released wakes the head of id's line, if any: the lock was just released.
func (q *lockQueue) released(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l := q.lines[id]; l != nil {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// waiting counts the requests waiting for a lock.
func (q *lockQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, l := range q.lines {
		n += len(l.waiters)
	}
	return n
}
