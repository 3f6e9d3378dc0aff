// Package workers runs jobs on goroutines that outlive one job.
//
// A new goroutine starts with a small stack that a deep request path then
// grows, copying it twice or so; a worker keeps its grown stack for the next
// job. At a few thousand connections or HTTP/2 streams a second that was 7-9%
// of fulcrum's CPU (runtime.newstack and copystack in the profiles).
package workers

import "sync"

// Pool runs serve(v) for each v given to Run, on an idle worker or a new
// one. Up to max workers wait for the next job; more end when their job
// does.
type Pool[T any] struct {
	serve func(T)
	max   int

	mu     sync.Mutex
	idle   []*worker[T]
	closed bool
}

type job[T any] struct {
	v  T
	ok bool // false: end the worker
}

type worker[T any] struct{ next chan job[T] }

// New returns a pool that keeps up to max idle workers.
func New[T any](max int, serve func(T)) *Pool[T] {
	return &Pool[T]{serve: serve, max: max}
}

// Run serves v on an idle worker, or on a new one.
func (p *Pool[T]) Run(v T) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.next <- job[T]{v, true}
		return
	}
	p.mu.Unlock()
	w := &worker[T]{next: make(chan job[T], 1)}
	go w.loop(p, v)
}

func (w *worker[T]) loop(p *Pool[T], v T) {
	for {
		p.serve(v)
		if !p.put(w) {
			return
		}
		j := <-w.next
		if !j.ok {
			return
		}
		v = j.v
	}
}

// put makes w idle; false means it should end.
func (p *Pool[T]) put(w *worker[T]) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.max {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// Idle reports how many workers wait for a job.
func (p *Pool[T]) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Close ends the idle workers, and every busy one when its job ends. Run
// still works after Close; its workers end after their job.
func (p *Pool[T]) Close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		w.next <- job[T]{}
	}
}
