package httpproxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
)

// tunnel relays a 101 Switching Protocols response and then copies bytes
// both ways (WebSocket) until both sides are done. The client connection is
// not reused afterwards.
func (cc *clientConn) tunnel(cfg *Config, uc *upConn, o outcome) outcome {
	resp := &cc.resp
	b := cc.out[:0]
	b = append(b, "HTTP/1.1 101 "...)
	b = append(b, resp.reason...)
	b = append(b, "\r\n"...)
	for i := range resp.fields {
		f := &resp.fields[i]
		if hopByHop(f.name) && !equalFold(f.name, "upgrade") {
			continue
		}
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Connection: Upgrade\r\n\r\n"...)
	// Bytes the server sent right after its head belong to the tunnel.
	b = append(b, uc.rd.buffered()...)
	uc.rd.discard(len(uc.rd.buffered()))
	cc.out = b
	o.replied, o.keep = true, false
	cc.setWriteDeadline(time.Now().Add(cfg.TunnelIdle))
	if _, err := cc.conn.Write(b); err != nil {
		uc.close()
		o.err = err
		return o
	}
	// And bytes the client sent after its request head go to the server.
	if early := cc.rd.buffered(); len(early) > 0 {
		uc.conn.SetWriteDeadline(time.Now().Add(cfg.TunnelIdle))
		if _, err := uc.conn.Write(early); err != nil {
			uc.close()
			o.err = err
			return o
		}
		cc.rd.discard(len(early))
	}
	if l := cc.live; relayable(l, cc.conn, uc.conn) {
		// A relay that parks when idle; serve hands it over.
		r := &relay{l: l, client: cc.conn, uc: uc, idle: cfg.TunnelIdle}
		r.last.Store(time.Now().UnixNano())
		r.bytes.Store(o.bytes)
		o.bytes = 0
		if l.nsocks == 0 {
			l.addSock(cc.conn)
		}
		if l.nsocks == 1 && l.addSock(uc.conn) {
			l.tun.Store(r)
			uc.rd.put() // the relay reads with buffers of its own (cc.rd's goes back with cc: the request still points into it)
			return o
		}
	}
	defer uc.close()
	up, down, err := tcpproxy.Pipe(cc.conn, uc.conn, cfg.TunnelIdle)
	o.bytes += up + down
	if err != nil && cc.h.log.Enabled(context.Background(), slog.LevelDebug) {
		cc.h.log.Debug("tunnel ended", "listener", cfg.Listener, "err", err)
	}
	return o
}
