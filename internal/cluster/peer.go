package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// peerLink pushes this node's changes to one peer: dial, handshake, send
// what is queued, the whole table, then deltas as they come; reconnect with
// backoff when anything fails.
type peerLink struct {
	c     *Cluster
	name  string
	addr  string
	q     *queue
	st    stats
	proto atomic.Int32 // the connected session's protocol version; 0 when down
	older bool         // the next session offers protocol 1 (run's goroutine only)
}

// inbound counts what one peer pushes to this node.
type inbound struct {
	conns    atomic.Int32
	received atomic.Uint64
}

func (p *peerLink) run(ctx context.Context) {
	wait := p.c.o.MinBackoff
	quiet := false // a failure was already logged since the last success
	for ctx.Err() == nil {
		began := time.Now()
		err := p.session(ctx)
		if ctx.Err() != nil {
			return
		}
		p.st.fail(err)
		switch {
		case errors.Is(err, errPeerIsNewer):
			p.c.log.Debug("cluster peer speaks protocol 2 after all, reconnecting with it", "peer", p.name)
		case isRefusal(err):
			p.c.log.Error("cluster peer refused", "peer", p.name, "address", p.addr, "err", err)
		case !quiet:
			p.c.log.Warn("cluster peer unreachable, retrying", "peer", p.name, "address", p.addr, "err", err)
			quiet = true
		default:
			p.c.log.Debug("cluster peer unreachable", "peer", p.name, "err", err)
		}
		if time.Since(began) > 10*time.Second { // it was up for a while
			wait = p.c.o.MinBackoff
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/5 + 1))
		t := time.NewTimer(wait - wait/10 + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, p.c.o.MaxBackoff)
		if p.st.connected.Load() {
			quiet = false
		}
	}
}

// session is one connection's life.
func (p *peerLink) session(ctx context.Context) error {
	conn, err := p.c.o.Dial(ctx, "tcp", p.addr)
	if err != nil {
		return fmt.Errorf("dialing: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	key, err := p.c.o.Ring.Derive(Purpose)
	if err != nil {
		return fmt.Errorf("deriving the replication key: %w", err)
	}
	proto := protoLatest
	if p.older {
		proto = proto1
	}
	// Offer the latest version, and after an acceptor closed on it, the
	// first once (it may run an older fulcrum), then the latest again.
	p.older = false
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	l, err := dialHandshake(conn, key, p.c.o.Node, p.c.o.Ring.Fingerprint(), p.name, proto)
	if err != nil {
		if proto > proto1 && errors.Is(err, errClosedAtHello) {
			p.older = true
			return fmt.Errorf("handshake: %w (offering protocol %d next, in case the peer runs an older fulcrum)", err, proto1)
		}
		return fmt.Errorf("handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	p.proto.Store(int32(proto))
	p.st.connected.Store(true)
	defer p.st.connected.Store(false)
	defer p.proto.Store(0)
	if proto < protoLatest {
		p.c.log.Warn("cluster peer connected with protocol 1 (an older fulcrum): persistence is replicated, rate and connection limits are not", "peer", p.name, "address", p.addr)
	} else {
		p.c.log.Info("cluster peer connected", "peer", p.name, "address", p.addr)
	}
	defer p.clearInflight()

	acked := make(chan uint64, 1)
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr <- p.readAcks(l, acked)
	}()
	s := &pusher{p: p, l: l, acked: acked, readErr: readErr}
	return s.run(ctx)
}

// readAcks forwards the latest acknowledged batch id, coalescing.
func (p *peerLink) readAcks(l *link, acked chan uint64) error {
	var buf []byte
	for {
		typ, payload, b, err := l.readFrame(buf)
		buf = b
		if err != nil {
			return fmt.Errorf("reading acknowledgement: %w", err)
		}
		if typ != frameAck || len(payload) != 8 {
			return fmt.Errorf("%w: unexpected frame type %d", ErrMalformed, typ)
		}
		id := binary.BigEndian.Uint64(payload)
		select {
		case acked <- id:
		default:
			select { // replace the older id waiting there
			case <-acked:
			default:
			}
			acked <- id
		}
	}
}

func (p *peerLink) clearInflight() {
	p.st.mu.Lock()
	p.st.inflight = p.st.inflight[:0]
	p.st.mu.Unlock()
}

// pusher is the sending half of one session.
type pusher struct {
	p       *peerLink
	l       *link
	acked   chan uint64
	readErr chan error
	batch   batchWriter
	since   time.Time // when the batch's oldest change was queued
	frame   []byte
	scratch []byte
	nextID  uint64
	lastOut time.Time
	limits  []change // a limit snapshot being sent
}

func (s *pusher) run(ctx context.Context) error {
	p := s.p
	p.q.markResync() // a new connection starts with the whole table
	s.batch.reset()
	var items []change
	tick := time.NewTicker(pingEvery / 2)
	defer tick.Stop()
	for {
		var since time.Time
		var resync bool
		items, since, resync = p.q.take(items)
		s.since = since
		for i := range items {
			if err := s.add(ctx, &items[i]); err != nil {
				return err
			}
		}
		if resync {
			if err := s.sendTable(ctx); err != nil {
				return err
			}
		}
		if err := s.flushBatch(ctx); err != nil {
			return err
		}
		if err := s.flushConn(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-s.readErr:
			return err
		case id := <-s.acked:
			s.ack(id)
		case <-p.q.wake:
		case now := <-tick.C:
			if err := s.keepalive(ctx, now); err != nil {
				return err
			}
		}
	}
}

// sendTable queues every entry of every table.
func (s *pusher) sendTable(ctx context.Context) error {
	s.p.st.resyncs.Add(1)
	start := s.p.c.o.Now()
	var err error
	add := func(c change) bool {
		if s.since.IsZero() {
			s.since = start
		}
		err = s.add(ctx, &c)
		return err == nil
	}
	s.p.c.rangeTables(add)
	if err == nil && s.l.proto >= proto2 {
		s.limits = s.p.c.limitSnapshot(s.p.q, s.limits[:0])
		for i := range s.limits {
			if !add(s.limits[i]) {
				break
			}
		}
		clear(s.limits)
	}
	return err
}

// add appends c to the batch, sending the batch when full. A limit record
// queued for an earlier session is dropped when this one speaks protocol 1.
func (s *pusher) add(ctx context.Context, c *change) error {
	if c.lim.Kind != 0 && s.l.proto < proto2 {
		return nil
	}
	if s.batch.n >= batchChanges || len(s.batch.buf)+encodedLen(c) > batchBytes {
		if err := s.flushBatch(ctx); err != nil {
			return err
		}
	}
	s.batch.add(c)
	return nil
}

// keepalive sends an empty batch on an idle link, and gives up on a peer
// that has not acknowledged for too long.
func (s *pusher) keepalive(ctx context.Context, now time.Time) error {
	st := &s.p.st
	st.mu.Lock()
	stale := len(st.inflight) > 0 && now.Sub(st.inflight[0].sent) > ackTimeout
	idle := len(st.inflight) == 0 && now.Sub(s.lastOut) >= pingEvery
	st.mu.Unlock()
	if stale {
		return errors.New("peer stopped acknowledging")
	}
	if idle {
		if err := s.sendBatch(ctx); err != nil {
			return err
		}
		return s.flushConn()
	}
	return nil
}

// flushBatch sends the batch being built, if it holds anything.
func (s *pusher) flushBatch(ctx context.Context) error {
	if s.batch.n == 0 {
		return nil
	}
	return s.sendBatch(ctx)
}

// sendBatch frames the batch (possibly empty: a keepalive), waiting first
// while the window is full.
func (s *pusher) sendBatch(ctx context.Context) error {
	if err := s.waitWindow(ctx); err != nil {
		return err
	}
	s.nextID++
	s.frame = binary.BigEndian.AppendUint64(s.frame[:0], s.nextID)
	s.frame = append(s.frame, s.batch.bytes()...)
	s.l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	var err error
	if s.scratch, err = s.l.writeFrame(frameBatch, s.frame, s.scratch); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	now := s.p.c.o.Now()
	since := s.since
	if since.IsZero() {
		since = now
	}
	st := &s.p.st
	st.mu.Lock()
	st.inflight = append(st.inflight, flight{id: s.nextID, n: s.batch.n, since: since, sent: now})
	st.mu.Unlock()
	s.lastOut = now
	s.batch.reset()
	s.since = time.Time{}
	return nil
}

// waitWindow blocks while window batches are unacknowledged.
func (s *pusher) waitWindow(ctx context.Context) error {
	for {
		s.p.st.mu.Lock()
		full := len(s.p.st.inflight) >= window
		s.p.st.mu.Unlock()
		if !full {
			return nil
		}
		if err := s.flushConn(); err != nil {
			return err
		}
		t := time.NewTimer(ackTimeout)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case err := <-s.readErr:
			t.Stop()
			return err
		case id := <-s.acked:
			t.Stop()
			s.ack(id)
		case <-t.C:
			return errors.New("peer stopped acknowledging")
		}
	}
}

// ack retires every batch up to id.
func (s *pusher) ack(id uint64) {
	st := &s.p.st
	now := s.p.c.o.Now()
	st.mu.Lock()
	n, i := 0, 0
	for ; i < len(st.inflight) && st.inflight[i].id <= id; i++ {
		n += st.inflight[i].n
	}
	st.inflight = append(st.inflight[:0], st.inflight[i:]...)
	st.mu.Unlock()
	st.sent.Add(uint64(n))
	st.synced(now)
}

func (s *pusher) flushConn() error {
	s.l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := s.l.flush(); err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}
