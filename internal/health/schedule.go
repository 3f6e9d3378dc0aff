package health

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// idleWorker is how long a worker waits for another probe before it exits.
// Short: after a burst (a slow pool, an overloaded machine) the surplus
// workers and their stacks go soon; in steady state a worker gets its next
// probe within milliseconds.
const idleWorker = 2 * time.Second

// scheduler runs the probes of a Group's checkers. One goroutine keeps the
// checkers' next due times in a heap under one timer and hands due checkers
// to workers: goroutines that outlive one probe, so a probe starts on a
// stack that has already grown, and that exit after idleWorker without
// work. There are only as many workers as probes were in flight at once
// lately, and never more than checkers: a checker is due again only after
// its probe has ended.
//
// At ten thousand probes a second this replaces a parked goroutine per
// server (its stack was most of the memory) and, compared with a timer
// callback per probe, a goroutine start, two stack growths and an exit per
// probe.
type scheduler struct {
	base time.Time // due times are offsets from base (monotonic, cheap to compare)
	mu   sync.Mutex
	due  dueHeap
	wake chan struct{} // the earliest due time moved earlier
	jobs chan *Checker // unbuffered: an idle worker takes the checker
	ctx  context.Context
	wg   sync.WaitGroup // the loop and every worker
}

func newScheduler() *scheduler {
	return &scheduler{base: time.Now(), wake: make(chan struct{}, 1), jobs: make(chan *Checker)}
}

// start runs the loop until ctx is done; wait waits for it and the workers.
func (s *scheduler) start(ctx context.Context) {
	s.ctx = ctx
	s.wg.Add(1)
	go s.loop()
}

func (s *scheduler) wait() { s.wg.Wait() }

// schedule makes c due after d (again).
func (s *scheduler) schedule(c *Checker, d time.Duration) {
	at := time.Since(s.base) + d
	s.mu.Lock()
	c.dueAt = at
	if c.dueIndex >= 0 {
		heap.Fix(&s.due, c.dueIndex)
	} else {
		heap.Push(&s.due, c)
	}
	first := s.due[0] == c
	s.mu.Unlock()
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// remove takes c off the schedule, if it is on it.
func (s *scheduler) remove(c *Checker) {
	s.mu.Lock()
	if c.dueIndex >= 0 {
		heap.Remove(&s.due, c.dueIndex)
	}
	s.mu.Unlock()
}

func (s *scheduler) loop() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var batch []*Checker
	for {
		s.mu.Lock()
		now := time.Since(s.base)
		for len(s.due) > 0 && s.due[0].dueAt <= now {
			batch = append(batch, heap.Pop(&s.due).(*Checker))
		}
		next := time.Hour
		if len(s.due) > 0 {
			next = s.due[0].dueAt - now
		}
		s.mu.Unlock()
		for i, c := range batch {
			s.dispatch(c)
			batch[i] = nil
		}
		batch = batch[:0]
		t.Reset(next)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

// dispatch gives c to an idle worker, or starts one. Only the loop calls
// it, so s.wg is above zero whenever it adds.
func (s *scheduler) dispatch(c *Checker) {
	select {
	case s.jobs <- c:
	default:
		s.wg.Add(1)
		go s.work(c)
	}
}

func (s *scheduler) work(c *Checker) {
	defer s.wg.Done()
	idle := time.NewTimer(idleWorker)
	defer idle.Stop()
	for {
		c.fire()
		idle.Reset(idleWorker)
		select {
		case c = <-s.jobs:
		case <-idle.C:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// dueHeap orders checkers by due time; each knows its index.
type dueHeap []*Checker

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].dueAt < h[j].dueAt }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].dueIndex, h[j].dueIndex = i, j
}

func (h *dueHeap) Push(x any) {
	c := x.(*Checker)
	c.dueIndex = len(*h)
	*h = append(*h, c)
}

func (h *dueHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	c.dueIndex = -1
	*h = old[:len(old)-1]
	return c
}
