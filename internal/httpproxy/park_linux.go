package httpproxy

import (
	"sync"
	"syscall"
	"time"
)

// parker watches parked connections with its own epoll set. Go's poller
// already holds every socket (edge-triggered); a socket may sit in two sets,
// and this one is level-triggered and one-shot: a parked socket that turns
// readable wakes the parker once, which hands it back to a goroutine, and
// stays registered but disarmed until it parks again.
type parker struct {
	epfd int

	mu     sync.Mutex
	parked map[uint64]*live
	nextID uint64
}

var (
	parkerOnce sync.Once
	theParker  *parker
)

// getParker returns the process's parker, started on first use; nil when
// the kernel refuses an epoll set (then nothing parks).
func getParker() *parker {
	parkerOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		theParker = &parker{epfd: fd, parked: make(map[uint64]*live)}
		go theParker.loop()
	})
	return theParker
}

// park registers l (armed, one-shot) and marks it parked. The registration
// runs under the socket's reference (RawConn.Control), so a connection
// closed meanwhile is refused rather than its descriptor number reused.
func (p *parker) park(l *live) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.id == 0 {
		p.nextID++
		l.id = p.nextID
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(uint32(l.id)), Pad: int32(uint32(l.id >> 32))}
	var opErr error
	err := l.raw.Control(func(fd uintptr) {
		op := syscall.EPOLL_CTL_MOD
		if !l.registered {
			op = syscall.EPOLL_CTL_ADD
		}
		opErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil || opErr != nil {
		return false
	}
	l.registered = true
	p.parked[l.id] = l
	l.state.Store(liveParked)
	return true
}

// claim takes l back from the parker for finishing: it reports false when
// the parker has already handed l to a goroutine.
func (p *parker) claim(l *live) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !l.state.CompareAndSwap(liveParked, liveClosed) {
		return false
	}
	delete(p.parked, l.id)
	return true
}

// loop wakes parked connections whose sockets turned readable, and every
// second finishes those whose keep-alive wait is over.
func (p *parker) loop() {
	events := make([]syscall.EpollEvent, 256)
	lastSweep := time.Now()
	var wake, expired []*live
	for {
		n, err := syscall.EpollWait(p.epfd, events, 1000)
		if err != nil && err != syscall.EINTR {
			// Not expected of a valid epoll set; do not spin.
			time.Sleep(100 * time.Millisecond)
		}
		wake = wake[:0]
		p.mu.Lock()
		for i := 0; i < n; i++ {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			l := p.parked[id]
			if l != nil && l.state.CompareAndSwap(liveParked, liveServing) {
				delete(p.parked, id)
				wake = append(wake, l)
			}
		}
		now := time.Now()
		expired = expired[:0]
		if now.Sub(lastSweep) >= time.Second {
			lastSweep = now
			ns := now.UnixNano()
			for id, l := range p.parked {
				if ns >= l.idleUntil && l.state.CompareAndSwap(liveParked, liveClosed) {
					delete(p.parked, id)
					expired = append(expired, l)
				}
			}
		}
		p.mu.Unlock()
		for _, l := range wake {
			go l.run()
		}
		for _, l := range expired {
			l.finish()
		}
		clear(wake)
		clear(expired)
	}
}

// Parked is the number of connections parked now, in every handler.
func Parked() int {
	p := getParker()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}
