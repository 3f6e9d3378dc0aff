package main

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// flushingWriter buffers writes and flushes them every period, when the
// buffer fills, and on Close. It is safe for concurrent use.
type flushingWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newFlushingWriter(w io.Writer, period time.Duration) *flushingWriter {
	f := &flushingWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				f.flush()
			case <-f.stop:
				f.flush()
				return
			}
		}
	}()
	return f
}

func (f *flushingWriter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.w.Write(p)
}

func (f *flushingWriter) flush() {
	f.mu.Lock()
	f.w.Flush()
	f.mu.Unlock()
}

// Close flushes what is left and stops the flusher.
func (f *flushingWriter) Close() error {
	close(f.stop)
	<-f.done
	return nil
}
