package workers_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/workers"
)

// goid is the running goroutine's id, from its stack header.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	return strings.Fields(string(b))[1]
}

// TestReuseAndBound: jobs one after another run on one goroutine; jobs at
// once each get a worker; no more than max stay idle; Close ends them.
func TestReuseAndBound(t *testing.T) {
	before := runtime.NumGoroutine()
	ids := make(chan string, 100)
	var gate sync.WaitGroup
	p := workers.New(3, func(wait *sync.WaitGroup) {
		ids <- goid()
		if wait != nil {
			wait.Wait()
		}
	})
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		p.Run(nil)
		seen[<-ids] = true
		for p.Idle() == 0 {
			runtime.Gosched() // the worker is on its way back
		}
	}
	if len(seen) != 1 {
		t.Fatalf("10 jobs in a row ran on %d goroutines, want 1", len(seen))
	}
	// Eight at once: eight workers; afterwards three stay idle.
	gate.Add(1)
	busy := map[string]bool{}
	for i := 0; i < 8; i++ {
		p.Run(&gate)
		busy[<-ids] = true
	}
	if len(busy) != 8 {
		t.Fatalf("8 blocked jobs ran on %d goroutines, want 8", len(busy))
	}
	gate.Done()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+3 || p.Idle() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines (%d before), %d idle: want 3 idle workers left", runtime.NumGoroutine(), before, p.Idle())
		}
		time.Sleep(time.Millisecond)
	}
	p.Close()
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after Close, %d before: idle workers did not end", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
	// Run still works after Close, on a worker that then ends.
	p.Run(nil)
	<-ids
	if p.Idle() != 0 {
		t.Fatalf("%d idle after Close", p.Idle())
	}
}
