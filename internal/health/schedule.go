package health

import (
	"context"
	"sync"
	"time"
)

// idleWorker is how long a worker waits for another probe before it exits.
// Short: after a burst (a slow pool, an overloaded machine) the surplus
// workers and their stacks go soon; in steady state a worker gets its next
// probe within milliseconds.
const idleWorker = 2 * time.Second

// tick is the granularity of due times: a checker is due at the first
// multiple of tick after its delay. Probes then start in batches, up to a
// hundred a second instead of one whenever a timer fires, so the runtime
// wakes a thread and polls the network once per batch rather than once per
// probe. 10ms is 1% of the shortest usual interval.
const tick = 10 * time.Millisecond

// scheduler runs the probes of a Group's checkers. One goroutine, the
// loop, keeps the checkers' due times in a heap under one timer and hands
// due checkers to workers: goroutines that outlive one probe, so a probe
// starts on a stack that has already grown. There are only as many
// workers as probes were in flight at once lately, and never more than
// checkers: a checker is due again only after its probe has ended.
//
// Idle workers wait on a stack: the one that finished last gets the next
// probe, so in steady state the same few workers stay busy (their stacks
// warm in the cache) and the surplus of a burst stays idle at the bottom,
// where the loop finds it after idleWorker and lets it exit. A worker has
// no timer of its own and waits on one channel.
//
// At ten thousand probes a second this replaces a parked goroutine per
// server (its stack was most of the memory) and, compared with a timer
// callback per probe, a goroutine start, two stack growths and an exit per
// probe.
type scheduler struct {
	base time.Time // due times are offsets from base (monotonic, cheap to compare)

	mu     sync.Mutex // guards due, idle and closed
	due    dueHeap
	idle   []*worker // oldest first; the last one gets the next probe
	closed bool      // the loop has ended: workers exit instead of idling

	wake chan struct{} // the earliest due time moved earlier
	ctx  context.Context
	wg   sync.WaitGroup // the loop and every worker
}

// worker is an idle worker's mailbox: a checker to probe, or nil to exit.
type worker struct {
	job       chan *Checker // buffered: handing over never blocks the loop
	idleSince time.Duration // since base
}

func newScheduler() *scheduler {
	return &scheduler{base: time.Now(), wake: make(chan struct{}, 1)}
}

// start runs the loop until ctx is done; wait waits for it and the workers.
func (s *scheduler) start(ctx context.Context) {
	s.ctx = ctx
	s.wg.Add(1)
	go s.loop()
}

func (s *scheduler) wait() { s.wg.Wait() }

// schedule makes c due after d, rounded up to a tick. A checker is in the
// heap at most once: when it starts, then each time its probe has ended.
// A stopped checker is not taken out; it is dropped when due (its fire
// returns at once).
func (s *scheduler) schedule(c *Checker, d time.Duration) {
	at := (time.Since(s.base) + d + tick - 1) / tick * tick
	s.mu.Lock()
	s.due.push(due{at: at, c: c})
	first := s.due[0].c == c
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *scheduler) loop() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var batch []*Checker
	var workers, reaped []*worker
	for {
		s.mu.Lock()
		now := time.Since(s.base)
		for len(s.due) > 0 && s.due[0].at <= now {
			batch = append(batch, s.due.pop().c)
		}
		// Pair the batch with idle workers, most recently idle first.
		n := min(len(batch), len(s.idle))
		for i := range n {
			w := s.idle[len(s.idle)-1-i]
			workers = append(workers, w)
		}
		clear(s.idle[len(s.idle)-n:])
		s.idle = s.idle[:len(s.idle)-n]
		reaped = s.reapLocked(now, reaped)
		next := time.Hour
		if len(s.due) > 0 {
			next = s.due[0].at - now
		}
		if len(s.idle) > 0 {
			next = min(next, idleWorker)
		}
		s.mu.Unlock()
		for i, c := range batch {
			if i < len(workers) {
				workers[i].job <- c
			} else {
				s.wg.Add(1)
				go s.work(&worker{job: make(chan *Checker, 1)}, c)
			}
		}
		for _, w := range reaped {
			w.job <- nil
		}
		clear(batch)
		clear(workers)
		clear(reaped)
		batch, workers, reaped = batch[:0], workers[:0], reaped[:0]
		t.Reset(next)
		select {
		case <-s.ctx.Done():
			s.close()
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// reapLocked takes the workers idle for idleWorker or longer off the
// stack (they are at its bottom) and appends them to out.
func (s *scheduler) reapLocked(now time.Duration, out []*worker) []*worker {
	k := 0
	for k < len(s.idle) && now-s.idle[k].idleSince >= idleWorker {
		k++
	}
	if k == 0 {
		return out
	}
	out = append(out, s.idle[:k]...)
	n := copy(s.idle, s.idle[k:])
	clear(s.idle[n:])
	s.idle = s.idle[:n]
	return out
}

// close ends every idle worker; busy ones end when their probe has.
func (s *scheduler) close() {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, w := range idle {
		w.job <- nil
	}
}

// work runs c's probe, then every probe it is given, until it is given nil
// or the loop has ended.
func (s *scheduler) work(w *worker, c *Checker) {
	defer s.wg.Done()
	for c != nil {
		c.fire()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		w.idleSince = time.Since(s.base)
		s.idle = append(s.idle, w)
		s.mu.Unlock()
		c = <-w.job
	}
}

// due is a checker and when it is due; the heap holds the time itself, so
// ordering it touches no checker.
type due struct {
	at time.Duration // since base
	c  *Checker
}

// dueHeap is a binary min-heap of due times. It is typed rather than a
// container/heap.Interface: pushing through `any` would allocate per probe.
type dueHeap []due

func (h *dueHeap) push(d due) {
	*h = append(*h, d)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].at <= q[i].at {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

func (h *dueHeap) pop() due {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q[last] = due{}
	q = q[:last]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < len(q) && q[l].at < q[small].at {
			small = l
		}
		if r := l + 1; r < len(q) && q[r].at < q[small].at {
			small = r
		}
		if small == i {
			break
		}
		q[i], q[small] = q[small], q[i]
		i = small
	}
	*h = q
	return top
}
