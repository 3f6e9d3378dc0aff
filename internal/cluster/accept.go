package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
)

// accept serves the replication endpoint: each connection must complete the
// handshake (same key ring, a configured peer name) before anything it sends
// is read as a change.
func (c *Cluster) accept(ctx context.Context) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			c.log.Warn("cluster accept", "err", err)
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		select {
		case c.slots <- struct{}{}:
		default: // too many handshakes at once
			conn.Close()
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.serveConn(ctx, conn)
		}()
	}
}

// serveConn applies one peer's pushes and acknowledges them.
func (c *Cluster) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	remote := conn.RemoteAddr().String()
	l, err := c.handshake(conn)
	<-c.slots
	if err != nil {
		if isRefusal(err) {
			c.refused.Add(1)
			c.log.Error("cluster connection refused", "remote", remote, "err", err)
		} else if ctx.Err() == nil {
			c.log.Debug("cluster handshake failed", "remote", remote, "err", err)
		}
		return
	}
	in := c.in[l.peer]
	in.conns.Add(1)
	defer in.conns.Add(-1)
	// The connection counts this session reports hold only while it lasts.
	src := limit.Source{Node: l.peer, Session: c.sessions.Add(1)}
	defer c.forgetLimits(src)
	c.log.Info("cluster peer pushing to us", "peer", l.peer, "remote", remote, "protocol", l.proto)
	err = c.receive(l, in, src)
	if ctx.Err() != nil {
		return
	}
	if isRefusal(err) || errors.Is(err, ErrMalformed) {
		c.log.Error("cluster peer dropped", "peer", l.peer, "err", err)
	} else {
		c.log.Info("cluster peer disconnected", "peer", l.peer, "err", err)
	}
}

func (c *Cluster) handshake(conn net.Conn) (*link, error) {
	key, err := c.o.Ring.Derive(Purpose)
	if err != nil {
		return nil, fmt.Errorf("deriving the replication key: %w", err)
	}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	l, err := acceptHandshake(conn, key, c.o.Node, c.o.Ring.Fingerprint(), func(name string) bool { return c.in[name] != nil })
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return l, nil
}

// receive reads batches until the connection ends, applying each whole and
// acknowledging it (once per burst: acks are cumulative).
func (c *Cluster) receive(l *link, in *inbound, src limit.Source) error {
	var buf, scratch []byte
	var ack [8]byte
	for {
		l.conn.SetReadDeadline(time.Now().Add(idleTimeout))
		typ, payload, b, err := l.readFrame(buf)
		buf = b
		if err != nil {
			return err
		}
		if typ != frameBatch || len(payload) < 8 {
			return fmt.Errorf("%w: unexpected frame type %d", ErrMalformed, typ)
		}
		n := 0
		if err := decodeBatch(payload[8:], l.proto, func(ch change) {
			if c.apply(src, ch) {
				n++
			}
		}); err != nil {
			return err
		}
		in.received.Add(uint64(n))
		copy(ack[:], payload[:8])
		if l.r.Buffered() > 0 {
			continue // more is already here; acknowledge it all at once
		}
		l.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if scratch, err = l.writeFrame(frameAck, ack[:], scratch); err != nil {
			return err
		}
		if err := l.flush(); err != nil {
			return err
		}
	}
}
