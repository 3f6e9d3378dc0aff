package listener

import (
	"net"
	"sync"
)

// maxIdleWorkers bounds the goroutines kept waiting for a connection.
const maxIdleWorkers = 128

// workers runs connections on goroutines that outlive one connection. A
// new goroutine starts with a small stack that the request path then grows
// (copied twice or so); a worker keeps its grown stack for the next
// connection. At a few thousand new connections a second (Connection:
// close traffic) that was 7% of the CPU. Up to maxIdleWorkers wait; more
// end when their connection does.
type workers struct {
	mu     sync.Mutex
	idle   []*worker
	closed bool
}

type worker struct{ next chan net.Conn }

// run serves c on an idle worker, or on a new one.
func (w *workers) run(l *Listener, c net.Conn) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		wk.next <- c
		return
	}
	w.mu.Unlock()
	wk := &worker{next: make(chan net.Conn, 1)}
	go wk.loop(l, w, c)
}

func (wk *worker) loop(l *Listener, w *workers, c net.Conn) {
	for c != nil {
		l.serve(c)
		if !w.put(wk) {
			return
		}
		c = <-wk.next
	}
}

// put makes wk idle; false means it should end.
func (w *workers) put(wk *worker) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.idle) >= maxIdleWorkers {
		return false
	}
	w.idle = append(w.idle, wk)
	return true
}

// close ends the idle workers and every worker when its connection ends.
func (w *workers) close() {
	w.mu.Lock()
	w.closed = true
	idle := w.idle
	w.idle = nil
	w.mu.Unlock()
	for _, wk := range idle {
		wk.next <- nil
	}
}
