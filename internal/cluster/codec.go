package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/persist"
)

// ErrMalformed is wrapped by every decoding error: a frame or message that
// does not parse is never applied, in part or in whole.
var ErrMalformed = errors.New("malformed change batch")

// change is one table write with the pool it belongs to: what links queue
// and the wire carries.
type change struct {
	pool string
	persist.Change
}

// maxPoolLen is the longest pool name the encoding carries (config names
// are at most 64 bytes).
const maxPoolLen = 255

// A batch is encoded as
//
//	count u32 | change*
//	change = poolLen u8 | pool | op u8 | keyLen u16 | key | [OpSet: srvLen u8 | server | seen u32]
//
// big-endian, seen in unix seconds (the table's own resolution).

// encodedLen is the size of c in a batch.
func encodedLen(c *change) int {
	n := 1 + len(c.pool) + 1 + 2 + len(c.Key)
	if c.Op == persist.OpSet {
		n += 1 + len(c.Server) + 4
	}
	return n
}

// appendChange appends c to a batch being built. It reports false, leaving
// dst as it was, for a change the encoding cannot carry (a name or key too
// long, an unknown op): tables never produce one.
func appendChange(dst []byte, c *change) ([]byte, bool) {
	if len(c.pool) == 0 || len(c.pool) > maxPoolLen || len(c.Key) == 0 || len(c.Key) > persist.MaxKeyLen {
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
// that the whole batch parses, so a malformed batch applies nothing.
func decodeBatch(p []byte, f func(change)) error {
	if err := walkBatch(p, nil); err != nil {
		return err
	}
	return walkBatch(p, f)
}

func walkBatch(p []byte, f func(change)) error {
	if len(p) < 4 {
		return fmt.Errorf("%w: %d bytes, too short for a count", ErrMalformed, len(p))
	}
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	var pool string // consecutive changes of one pool share its name
	for i := range n {
		var w wireChange
		var err error
		if w, p, err = readChange(p); err != nil {
			return fmt.Errorf("%w: change %d of %d: %v", ErrMalformed, i, n, err)
		}
		if f == nil {
			continue
		}
		if string(w.pool) != pool {
			pool = string(w.pool)
		}
		c := change{pool: pool, Change: persist.Change{Op: w.op, Key: string(w.key)}}
		if w.op == persist.OpSet {
			c.Server, c.Seen = string(w.server), time.Unix(int64(w.seen), 0)
		}
		f(c)
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d bytes after the last change", ErrMalformed, len(p))
	}
	return nil
}

// wireChange is a change as it sits in a batch, sub-slices of the input.
type wireChange struct {
	pool, key, server []byte
	op                persist.Op
	seen              uint32
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

func readChange(p []byte) (wireChange, []byte, error) {
	r := reader{p: p}
	var w wireChange
	w.pool = r.take(r.u8())
	w.op = persist.Op(r.u8())
	w.key = r.take(r.u16())
	switch {
	case r.err != nil:
		return w, nil, r.err
	case len(w.pool) == 0:
		return w, nil, errors.New("empty pool")
	case len(w.key) == 0 || len(w.key) > persist.MaxKeyLen:
		return w, nil, fmt.Errorf("key length %d", len(w.key))
	}
	switch w.op {
	case persist.OpSet:
		w.server = r.take(r.u8())
		w.seen = r.u32()
		if r.err == nil && len(w.server) == 0 {
			return w, nil, errors.New("empty server")
		}
	case persist.OpDelete:
	default:
		return w, nil, fmt.Errorf("unknown op %d", w.op)
	}
	return w, r.p, r.err
}
