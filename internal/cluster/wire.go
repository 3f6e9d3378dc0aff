package cluster

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// The replication link, one TCP connection per direction of a pair: the
// node that dials pushes its changes, the node that accepts applies them and
// acknowledges.
//
// Handshake (no secret ever crosses the wire; K = ring.Derive(Purpose)):
//
//	dialer   -> acceptor: magic | nonceD[32] | name | fingerprint
//	acceptor -> dialer:   magic | nonceA[32] | name | fingerprint | HMAC(K, "acceptor" | T)
//	dialer   -> acceptor: HMAC(K, "dialer" | T)
//	acceptor -> dialer:   status u8 | reason
//
// where T = nonceD | nonceA | dialer name | acceptor name [| version u8],
// and names and fingerprints are u8-length-prefixed. The magic names the
// protocol version: "FLC1" (persistence changes) or "FLC2" (and limit
// records, codec.go); the version byte ends T from version 2 on, so it
// cannot be altered on the way. The acceptor speaks the dialer's version.
// A dialer offers 2 first; an older acceptor closes the connection on a
// magic it does not know, and the dialer's next attempt offers 1 (then 2
// again once that session ends), so a pair can be upgraded one node at a
// time: persistence replicates throughout, limits once both speak 2. An
// acceptor that knows 2 and is offered 1 says so after its fingerprint
// (newerMark), and the dialer goes back to 2 at once: a connection closed
// for another reason (no handshake slot free) does not leave a pair on 1.
// Both MACs are checked with hmac.Equal; the dialer sends its MAC before
// checking the acceptor's so that both sides see and log a key ring
// mismatch. The fingerprint is only for the log line (which rings
// differ), never trusted.
//
// After it, every frame is len u32 | AES-256-GCM(type u8 | payload) with
// the length as additional data, a key per direction (HMAC(K, "d2a" | T),
// HMAC(K, "a2d" | T)) and the frame counter as nonce, so frames cannot be
// forged, replayed, reordered or read (keys are session ids).

// Purpose is the key ring purpose of the replication key.
const Purpose = "fulcrum cluster v1"

// ErrRefused is wrapped by handshake errors that mean the other side does
// not hold the same key ring (or is not a configured peer): retrying does
// not help until the configuration changes.
var ErrRefused = errors.New("peer refused")

const (
	proto1       = 1 // persistence changes
	proto2       = 2 // and limit records
	protoLatest  = proto2
	nonceLen     = 32
	macLen       = sha256.Size
	maxFrame     = 4 << 20 // bytes of one frame's payload
	frameBatch   = 1       // dialer -> acceptor: id u64 | batch
	frameAck     = 2       // acceptor -> dialer: id u64 of the last batch applied
	statusOK     = 0
	statusRefuse = 1
)

// magics are the first bytes of each protocol version's hello.
var magics = map[int]string{proto1: "FLC1", proto2: "FLC2"}

// newerMark ends the fingerprint an acceptor sends to a dialer offering an
// older version than it knows; a dialer of that older version only logs it.
const newerMark = " (speaks protocol 2)"

// errPeerIsNewer: the acceptor knows a newer version than the one offered.
var errPeerIsNewer = errors.New("peer speaks a newer protocol than offered")

// errClosedAtHello: the acceptor closed the connection instead of
// answering the hello, as a node that does not know the version offered
// does.
var errClosedAtHello = errors.New("connection closed at the hello")

// hello is the first message of each side.
type hello struct {
	proto       int
	nonce       [nonceLen]byte
	name        string
	fingerprint string
}

func (h *hello) marshal() []byte {
	b := append([]byte(magics[h.proto]), h.nonce[:]...)
	b = appendString8(b, h.name)
	return appendString8(b, h.fingerprint)
}

func readHello(r io.Reader) (hello, error) {
	var h hello
	head := make([]byte, 4+nonceLen)
	if _, err := io.ReadFull(r, head); err != nil {
		return h, fmt.Errorf("reading hello: %w", err)
	}
	for v, m := range magics {
		if string(head[:4]) == m {
			h.proto = v
		}
	}
	if h.proto == 0 {
		return h, fmt.Errorf("%w: not a fulcrum cluster peer, or a newer one (magic %q)", ErrRefused, head[:4])
	}
	copy(h.nonce[:], head[4:])
	var err error
	if h.name, err = readString8(r); err != nil {
		return h, err
	}
	h.fingerprint, err = readString8(r)
	return h, err
}

func appendString8(b []byte, s string) []byte {
	return append(append(b, byte(min(len(s), 255))), s[:min(len(s), 255)]...)
}

func readString8(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", fmt.Errorf("reading hello: %w", err)
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("reading hello: %w", err)
	}
	return string(b), nil
}

// transcript binds both nonces, both names and (from version 2) the
// version.
func transcript(dialer, acceptor *hello) []byte {
	t := append(dialer.nonce[:], acceptor.nonce[:]...)
	t = appendString8(t, dialer.name)
	t = appendString8(t, acceptor.name)
	if dialer.proto >= proto2 {
		t = append(t, byte(dialer.proto))
	}
	return t
}

func mac(key []byte, label string, t []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(t)
	return m.Sum(nil)
}

// link is an established, authenticated connection.
type link struct {
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	peer  string // the other side's node name
	proto int    // the protocol version both speak
	send  sealer
	recv  sealer
}

// sealer is one direction's AEAD with its frame counter.
type sealer struct {
	aead  cipher.AEAD
	seq   uint64
	nonce [12]byte
}

func newSealer(key []byte) (sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, fmt.Errorf("frame key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, fmt.Errorf("frame key: %w", err)
	}
	return sealer{aead: aead}, nil
}

func (s *sealer) next() []byte {
	binary.BigEndian.PutUint64(s.nonce[4:], s.seq)
	s.seq++
	return s.nonce[:]
}

// newLink derives the frame keys of a completed handshake.
func newLink(conn net.Conn, r *bufio.Reader, peer string, proto int, key, t []byte, dialer bool) (*link, error) {
	d2a, err := newSealer(mac(key, "d2a", t)[:32])
	if err != nil {
		return nil, err
	}
	a2d, err := newSealer(mac(key, "a2d", t)[:32])
	if err != nil {
		return nil, err
	}
	l := &link{conn: conn, r: r, w: bufio.NewWriterSize(conn, 64<<10), peer: peer, proto: proto, send: a2d, recv: d2a}
	if dialer {
		l.send, l.recv = d2a, a2d
	}
	return l, nil
}

// dialHandshake runs the dialer's side, offering protocol version proto:
// it proves this node holds the ring and checks that the acceptor does,
// and that the acceptor is want.
func dialHandshake(conn net.Conn, key []byte, self, fingerprint, want string, proto int) (*link, error) {
	me := hello{proto: proto, name: self, fingerprint: fingerprint}
	rand.Read(me.nonce[:])
	if _, err := conn.Write(me.marshal()); err != nil {
		return nil, fmt.Errorf("sending hello: %w", err)
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	them, err := readHello(r)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return nil, fmt.Errorf("%w: %w", errClosedAtHello, err)
		}
		return nil, err
	}
	if them.proto != proto {
		return nil, fmt.Errorf("%w: %s answered protocol %d to %d", ErrRefused, them.name, them.proto, proto)
	}
	if proto < protoLatest && strings.HasSuffix(them.fingerprint, newerMark) {
		return nil, errPeerIsNewer
	}
	theirMAC := make([]byte, macLen)
	if _, err := io.ReadFull(r, theirMAC); err != nil {
		return nil, fmt.Errorf("reading proof: %w", err)
	}
	t := transcript(&me, &them)
	if _, err := conn.Write(mac(key, "dialer", t)); err != nil {
		return nil, fmt.Errorf("sending proof: %w", err)
	}
	if !hmac.Equal(theirMAC, mac(key, "acceptor", t)) {
		return nil, fmt.Errorf("%w: %s does not hold this key ring (its fingerprint %s, ours %s)", ErrRefused, them.name, them.fingerprint, fingerprint)
	}
	if them.name != want {
		return nil, fmt.Errorf("%w: address answers as node %q, want %q", ErrRefused, them.name, want)
	}
	status, err := readString8(r)
	if err != nil {
		return nil, fmt.Errorf("reading verdict: %w", err)
	}
	if status != "" {
		return nil, fmt.Errorf("%w: %s says: %s", ErrRefused, them.name, status)
	}
	return newLink(conn, r, them.name, proto, key, t, true)
}

// acceptHandshake runs the acceptor's side. known says whether a node name
// is a configured peer.
func acceptHandshake(conn net.Conn, key []byte, self, fingerprint string, known func(string) bool) (*link, error) {
	r := bufio.NewReaderSize(conn, 64<<10)
	them, err := readHello(r)
	if err != nil {
		return nil, err
	}
	me := hello{proto: them.proto, name: self, fingerprint: fingerprint}
	if them.proto < protoLatest {
		me.fingerprint += newerMark
	}
	rand.Read(me.nonce[:])
	t := transcript(&them, &me)
	if _, err := conn.Write(append(me.marshal(), mac(key, "acceptor", t)...)); err != nil {
		return nil, fmt.Errorf("sending hello: %w", err)
	}
	theirMAC := make([]byte, macLen)
	if _, err := io.ReadFull(r, theirMAC); err != nil {
		return nil, fmt.Errorf("reading proof from %q: %w", them.name, err)
	}
	var refusal error
	switch {
	case !hmac.Equal(theirMAC, mac(key, "dialer", t)):
		refusal = fmt.Errorf("%w: %q does not hold this key ring (its fingerprint %s, ours %s)", ErrRefused, them.name, them.fingerprint, fingerprint)
	case !known(them.name):
		refusal = fmt.Errorf("%w: node %q is not in cluster.peers", ErrRefused, them.name)
	}
	if refusal != nil {
		// Only a node holding the ring learns why.
		reason := "refused"
		if hmac.Equal(theirMAC, mac(key, "dialer", t)) {
			reason = "node " + them.name + " is not one of my peers"
		}
		conn.Write(appendString8(nil, reason))
		return nil, refusal
	}
	if _, err := conn.Write(appendString8(nil, "")); err != nil {
		return nil, fmt.Errorf("sending verdict: %w", err)
	}
	return newLink(conn, r, them.name, them.proto, key, t, false)
}

// writeFrame seals and buffers one frame; flush sends it.
func (l *link) writeFrame(typ byte, payload []byte, scratch []byte) ([]byte, error) {
	if len(payload)+1 > maxFrame {
		return scratch, fmt.Errorf("frame of %d bytes exceeds %d", len(payload)+1, maxFrame)
	}
	size := len(payload) + 1 + l.send.aead.Overhead()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(size))
	scratch = append(append(scratch[:0], typ), payload...)
	sealed := l.send.aead.Seal(scratch[:0], l.send.next(), scratch, hdr[:])
	if _, err := l.w.Write(hdr[:]); err != nil {
		return sealed, err
	}
	_, err := l.w.Write(sealed)
	return sealed, err
}

func (l *link) flush() error { return l.w.Flush() }

// readFrame reads and opens one frame into buf; the payload aliases buf.
func (l *link) readFrame(buf []byte) (typ byte, payload, out []byte, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(l.r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	size := int(binary.BigEndian.Uint32(hdr[:]))
	if size < 1+l.recv.aead.Overhead() || size > maxFrame+l.recv.aead.Overhead() {
		return 0, nil, buf, fmt.Errorf("%w: frame length %d", ErrMalformed, size)
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(l.r, buf); err != nil {
		return 0, nil, buf, err
	}
	plain, err := l.recv.aead.Open(buf[:0], l.recv.next(), buf, hdr[:])
	if err != nil {
		return 0, nil, buf, fmt.Errorf("%w: frame %d does not authenticate", ErrRefused, l.recv.seq-1)
	}
	return plain[0], plain[1:], buf, nil
}

// isRefusal reports whether err means the peer is not to be trusted (as
// opposed to a network failure).
func isRefusal(err error) bool { return errors.Is(err, ErrRefused) }
