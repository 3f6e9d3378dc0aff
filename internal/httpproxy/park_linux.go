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

// park registers the sockets of l that watch selects (bit i: l.socks[i]),
// armed and one-shot, and marks l parked. Registration runs under each
// socket's reference (RawConn.Control), so a connection closed meanwhile is
// refused rather than its descriptor number reused. On failure nothing
// stays armed.
func (p *parker) park(l *live, watch uint8) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	armed := 0
	for i := 0; i < l.nsocks; i++ {
		if watch&(1<<i) == 0 {
			continue
		}
		s := &l.socks[i]
		if s.id == 0 {
			p.nextID++
			s.id = p.nextID
		}
		if !p.arm(s) {
			for j := 0; j < i; j++ {
				if watch&(1<<j) != 0 {
					p.disarm(&l.socks[j])
				}
			}
			return false
		}
		armed++
	}
	if armed == 0 {
		return false
	}
	for i := 0; i < l.nsocks; i++ {
		if watch&(1<<i) != 0 {
			p.parked[l.socks[i].id] = l
		}
	}
	l.state.Store(liveParked)
	return true
}

// arm registers s (or re-arms it) for one readiness event.
func (p *parker) arm(s *parkSock) bool {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(uint32(s.id)), Pad: int32(uint32(s.id >> 32))}
	var opErr error
	err := s.raw.Control(func(fd uintptr) {
		op := syscall.EPOLL_CTL_MOD
		if !s.registered {
			op = syscall.EPOLL_CTL_ADD
		}
		opErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if err != nil || opErr != nil {
		return false
	}
	s.registered = true
	return true
}

// disarm leaves s registered but waiting for nothing.
func (p *parker) disarm(s *parkSock) {
	ev := syscall.EpollEvent{Fd: int32(uint32(s.id)), Pad: int32(uint32(s.id >> 32))}
	s.raw.Control(func(fd uintptr) { syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev) })
}

// forget removes l's entries from the map (under p.mu).
func (p *parker) forget(l *live) {
	for i := 0; i < l.nsocks; i++ {
		if p.parked[l.socks[i].id] == l {
			delete(p.parked, l.socks[i].id)
		}
	}
}

// claim takes l back from the parker for finishing: it reports false when
// the parker has already handed l to a goroutine.
func (p *parker) claim(l *live) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !l.state.CompareAndSwap(liveParked, liveClosed) {
		return false
	}
	p.forget(l)
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
				p.forget(l)
				wake = append(wake, l)
			}
		}
		now := time.Now()
		expired = expired[:0]
		if now.Sub(lastSweep) >= time.Second {
			lastSweep = now
			ns := now.UnixNano()
			for _, l := range p.parked {
				if ns >= l.idleUntil && l.state.CompareAndSwap(liveParked, liveClosed) {
					p.forget(l)
					expired = append(expired, l)
				}
			}
		}
		p.mu.Unlock()
		for _, l := range wake {
			go l.resume()
		}
		for _, l := range expired {
			l.finish()
		}
		clear(wake)
		clear(expired)
	}
}

// Parked is the number of sockets parked now, in every handler.
func Parked() int {
	p := getParker()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
}
