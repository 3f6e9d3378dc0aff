package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/persist"
)

// ErrMalformed is wrapped by every decoding error: a frame or message that
// does not parse is never applied, in part or in whole.
var ErrMalformed = errors.New("malformed change batch")

// change is one record with the table it belongs to: what links queue and
// the wire carries. Either a persistence table write (persist.Change, for
// the pool named pool) or, when lim.Kind is set, a limit table record (for
// the listener named pool).
type change struct {
	pool string
	persist.Change
	lim limit.Change
}

// maxPoolLen is the longest pool name the encoding carries (config names
// are at most 64 bytes).
const maxPoolLen = 255

// A batch is encoded as
//
//	count u32 | change*
//	change = poolLen u8 | pool | op u8 | body
//	op 1 (set)    keyLen u16 | key | srvLen u8 | server | seen u32
//	op 2 (delete) keyLen u16 | key
//	op 3 (rate)   addr | scope | n u32      n >= 1 requests admitted
//	op 4 (ahead)  addr | scope | ms u32     state ahead of now (snapshot)
//	op 5 (conns)  addr | n u32              connections open at the sender
//	op 6 (reset)                            a snapshot of the sender begins
//	addr  = len u8 (4 or 16) | bytes
//	scope = len u8 (>= 1) | name
//
// big-endian, seen in unix seconds (the table's own resolution). Ops 3-6
// are limit records (pool is then a listener), only valid in a protocol 2
// session (wire.go); a protocol 1 batch holding one is malformed.
const (
	opSet    = byte(persist.OpSet)
	opDelete = byte(persist.OpDelete)
	opRate   = 3
	opAhead  = 4
	opConns  = 5
	opReset  = 6
)

// opKinds maps the limit ops to their kinds (and limitOp back).
var opKinds = [...]limit.Kind{opRate: limit.KindRate, opAhead: limit.KindAhead, opConns: limit.KindConns, opReset: limit.KindReset}

func limitOp(k limit.Kind) (byte, bool) {
	for op, kind := range opKinds {
		if kind == k && k != 0 {
			return byte(op), true
		}
	}
	return 0, false
}

// encodedLen is the size of c in a batch.
func encodedLen(c *change) int {
	n := 1 + len(c.pool) + 1
	switch {
	case c.lim.Kind == limit.KindReset:
	case c.lim.Kind != 0:
		n += 1 + c.lim.Addr.BitLen()/8 + 4
		if c.lim.Kind != limit.KindConns {
			n += 1 + len(c.lim.Scope)
		}
	case c.Op == persist.OpSet:
		n += 2 + len(c.Key) + 1 + len(c.Server) + 4
	default:
		n += 2 + len(c.Key)
	}
	return n
}

// appendChange appends c to a batch being built. It reports false, leaving
// dst as it was, for a change the encoding cannot carry (a name or key too
// long, an unknown op): tables never produce one.
func appendChange(dst []byte, c *change) ([]byte, bool) {
	if len(c.pool) == 0 || len(c.pool) > maxPoolLen {
		return dst, false
	}
	if c.lim.Kind != 0 {
		return appendLimit(dst, c)
	}
	if len(c.Key) == 0 || len(c.Key) > persist.MaxKeyLen {
		return dst, false
	}
	switch c.Op {
	case persist.OpSet:
		if len(c.Server) == 0 || len(c.Server) > persist.MaxServerLen {
			return dst, false
		}
	case persist.OpDelete:
	default:
		return dst, false
	}
	dst = append(dst, byte(len(c.pool)))
	dst = append(dst, c.pool...)
	dst = append(dst, byte(c.Op))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(c.Key)))
	dst = append(dst, c.Key...)
	if c.Op == persist.OpSet {
		dst = append(dst, byte(len(c.Server)))
		dst = append(dst, c.Server...)
		dst = binary.BigEndian.AppendUint32(dst, uint32(min(max(c.Seen.Unix(), 0), 1<<32-1)))
	}
	return dst, true
}

func appendLimit(dst []byte, c *change) ([]byte, bool) {
	l := &c.lim
	op, ok := limitOp(l.Kind)
	scoped := l.Kind == limit.KindRate || l.Kind == limit.KindAhead
	switch {
	case !ok:
		return dst, false
	case l.Kind != limit.KindReset && !l.Addr.IsValid():
		return dst, false
	case scoped && (len(l.Scope) == 0 || len(l.Scope) > 255):
		return dst, false
	case l.Kind == limit.KindRate && l.N == 0:
		return dst, false
	}
	dst = append(dst, byte(len(c.pool)))
	dst = append(dst, c.pool...)
	dst = append(dst, op)
	if l.Kind == limit.KindReset {
		return dst, true
	}
	ab := l.Addr.AsSlice()
	dst = append(dst, byte(len(ab)))
	dst = append(dst, ab...)
	if scoped {
		dst = append(dst, byte(len(l.Scope)))
		dst = append(dst, l.Scope...)
	}
	v := l.N
	if l.Kind == limit.KindAhead {
		v = uint32(min(max(l.Ahead.Milliseconds(), 0), 1<<32-1))
	}
	return binary.BigEndian.AppendUint32(dst, v), true
}

// batchWriter builds one encoded batch.
type batchWriter struct {
	buf []byte // 4-byte count, then changes
	n   int
}

func (b *batchWriter) reset() {
	b.buf = append(b.buf[:0], 0, 0, 0, 0)
	b.n = 0
}

func (b *batchWriter) add(c *change) {
	var ok bool
	if b.buf, ok = appendChange(b.buf, c); ok {
		b.n++
	}
}

// bytes finishes the batch.
func (b *batchWriter) bytes() []byte {
	binary.BigEndian.PutUint32(b.buf, uint32(b.n))
	return b.buf
}

// decodeBatch calls f for each change of an encoded batch, after checking
// that the whole batch parses, so a malformed batch applies nothing. proto
// is the session's protocol: limit records need protocol 2.
func decodeBatch(p []byte, proto int, f func(change)) error {
	if err := walkBatch(p, proto, nil); err != nil {
		return err
	}
	return walkBatch(p, proto, f)
}

func walkBatch(p []byte, proto int, f func(change)) error {
	if len(p) < 4 {
		return fmt.Errorf("%w: %d bytes, too short for a count", ErrMalformed, len(p))
	}
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	var pool string // consecutive changes of one pool share its name
	for i := range n {
		var w wireChange
		var err error
		if w, p, err = readChange(p, proto); err != nil {
			return fmt.Errorf("%w: change %d of %d: %v", ErrMalformed, i, n, err)
		}
		if f == nil {
			continue
		}
		if string(w.pool) != pool {
			pool = string(w.pool)
		}
		f(w.change(pool))
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d bytes after the last change", ErrMalformed, len(p))
	}
	return nil
}

// wireChange is a change as it sits in a batch, sub-slices of the input.
type wireChange struct {
	pool, key, server []byte
	op                byte
	seen              uint32
	addr, scope       []byte
	n                 uint32 // requests, milliseconds or connections
}

// change copies w out of the input.
func (w *wireChange) change(pool string) change {
	c := change{pool: pool}
	switch w.op {
	case opSet:
		c.Change = persist.Change{Op: persist.OpSet, Key: string(w.key), Server: string(w.server), Seen: time.Unix(int64(w.seen), 0)}
		return c
	case opDelete:
		c.Change = persist.Change{Op: persist.OpDelete, Key: string(w.key)}
		return c
	}
	c.lim.Kind = opKinds[w.op]
	if a, ok := netip.AddrFromSlice(w.addr); ok {
		c.lim.Addr = a
	}
	switch w.op {
	case opRate:
		c.lim.Scope, c.lim.N = string(w.scope), w.n
	case opAhead:
		c.lim.Scope, c.lim.Ahead = string(w.scope), time.Duration(w.n)*time.Millisecond
	case opConns:
		c.lim.N = w.n
	}
	return c
}

// reader is a bounds-checked cursor.
type reader struct {
	p   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.p) {
		r.err = errors.New("truncated")
		return nil
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

func (r *reader) u8() int {
	if b := r.take(1); b != nil {
		return int(b[0])
	}
	return 0
}

func (r *reader) u16() int {
	if b := r.take(2); b != nil {
		return int(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func readChange(p []byte, proto int) (wireChange, []byte, error) {
	r := reader{p: p}
	var w wireChange
	w.pool = r.take(r.u8())
	w.op = byte(r.u8())
	switch {
	case r.err != nil:
		return w, nil, r.err
	case len(w.pool) == 0:
		return w, nil, errors.New("empty pool")
	}
	switch w.op {
	case opSet, opDelete:
		w.key = r.take(r.u16())
		if r.err == nil && (len(w.key) == 0 || len(w.key) > persist.MaxKeyLen) {
			return w, nil, fmt.Errorf("key length %d", len(w.key))
		}
		if w.op == opSet {
			w.server = r.take(r.u8())
			w.seen = r.u32()
			if r.err == nil && len(w.server) == 0 {
				return w, nil, errors.New("empty server")
			}
		}
		return w, r.p, r.err
	case opRate, opAhead, opConns, opReset:
		if proto < proto2 {
			return w, nil, fmt.Errorf("limit record (op %d) in a protocol %d session", w.op, proto)
		}
		return readLimit(&r, w)
	}
	return w, nil, fmt.Errorf("unknown op %d", w.op)
}

// readLimit reads a limit record's body.
func readLimit(r *reader, w wireChange) (wireChange, []byte, error) {
	if w.op == opReset {
		return w, r.p, nil
	}
	w.addr = r.take(r.u8())
	if r.err == nil && len(w.addr) != 4 && len(w.addr) != 16 {
		return w, nil, fmt.Errorf("address length %d", len(w.addr))
	}
	if w.op != opConns {
		w.scope = r.take(r.u8())
		if r.err == nil && len(w.scope) == 0 {
			return w, nil, errors.New("empty scope")
		}
	}
	w.n = r.u32()
	if r.err == nil && w.op == opRate && w.n == 0 {
		return w, nil, errors.New("rate record of 0 requests")
	}
	return w, r.p, r.err
}
