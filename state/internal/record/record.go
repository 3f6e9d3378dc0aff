// Package record is the session state machine the memory, bolt and postgres
// stores share: each store supplies a transaction (Tx) over its records and
// its clock, and the operations here decide. The redis store implements the
// same rules in Lua (see redisstore/scripts.go); the conformance suite in
// state/storetest holds them all to one behaviour.
package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/fulcrumlb/fulcrum/state"
)

// Record is one stored session.
type Record struct {
	Data     []byte
	Version  uint64
	LockID   string    // "" when unlocked
	LockedAt time.Time // zero when unlocked
	Created  time.Time
	Idle     time.Duration // sliding expiry
	Deadline time.Time     // absolute expiry
	Expires  time.Time
	Renewed  bool // a renewed id: readable by Get until Expires, nothing else
}

// Tx is one store transaction: loads and saves see each other and commit
// together.
type Tx interface {
	// Load returns the record at id, expired or not, or nil.
	Load(id string) (*Record, error)
	// Save stores r at id. A read-only transaction returns ErrReadOnly.
	Save(id string, r *Record) error
	// Remove deletes id.
	Remove(id string) error
	// Now is the store's clock, fixed for the transaction. Operations call
	// it after their first Load, so a store may read its clock with it.
	Now() time.Time
}

// ErrReadOnly is what a read-only Tx's Save returns: the store then runs the
// operation again in a read-write transaction.
var ErrReadOnly = errors.New("read-only transaction")

// slack is how far an expiry may lag behind now+Idle before an access writes
// it: reads cost no write while the session is hot. It is a hundredth of Idle
// (at most a second), so a session never expires more than 1% early.
func slack(idle time.Duration) time.Duration { return min(idle/100, time.Second) }

func (r *Record) live(now time.Time) bool { return now.Before(r.Expires) }

// slide pushes Expires to now+Idle capped by Deadline; it reports whether
// the stored record must be written.
func (r *Record) slide(now time.Time) bool {
	next := now.Add(r.Idle)
	if next.After(r.Deadline) {
		next = r.Deadline
	}
	if next.Sub(r.Expires) <= slack(r.Idle) {
		return false
	}
	r.Expires = next
	return true
}

func (r *Record) session(id string, now time.Time) *state.Session {
	s := &state.Session{
		ID:      id,
		Data:    bytes.Clone(r.Data),
		Version: r.Version,
		Locked:  r.LockID != "",
		Renewed: r.Renewed,
		Expires: r.Expires,
	}
	if s.Data == nil {
		s.Data = []byte{}
	}
	if s.Locked {
		s.LockAge = max(now.Sub(r.LockedAt), 0)
	}
	return s
}

// live loads id and returns it when it is live and, unless renewedOK, not a
// renewed id.
func live(tx Tx, id string, renewedOK bool) (*Record, error) {
	r, err := tx.Load(id)
	if err != nil {
		return nil, err
	}
	if r == nil || !r.live(tx.Now()) {
		return nil, state.ErrNotFound
	}
	if r.Renewed && !renewedOK {
		return nil, state.ErrRenewed
	}
	return r, nil
}

// Create implements state.Store.Create.
func Create(tx Tx, id string, data []byte, life state.Lifetime) (*state.Session, error) {
	old, err := tx.Load(id)
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	if old != nil && old.live(now) {
		return nil, state.ErrExists
	}
	r := &Record{Data: bytes.Clone(data), Version: 1, Created: now, Idle: life.Idle, Deadline: now.Add(life.Max)}
	r.Expires = now.Add(life.Idle)
	if r.Expires.After(r.Deadline) {
		r.Expires = r.Deadline
	}
	if err := tx.Save(id, r); err != nil {
		return nil, err
	}
	return r.session(id, now), nil
}

// Get implements state.Store.Get.
func Get(tx Tx, id string) (*state.Session, error) {
	r, err := live(tx, id, true)
	if err != nil {
		return nil, err
	}
	if !r.Renewed && r.slide(tx.Now()) {
		if err := tx.Save(id, r); err != nil {
			return nil, err
		}
	}
	return r.session(id, tx.Now()), nil
}

// Lock implements state.Store.Lock; lockID is the new lock's id.
func Lock(tx Tx, id, lockID string, breakAfter time.Duration) (*state.Session, error) {
	r, err := live(tx, id, false)
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	broke := false
	if r.LockID != "" {
		age := max(now.Sub(r.LockedAt), 0)
		if age < breakAfter {
			return nil, &state.LockedError{Age: age}
		}
		broke = true
	}
	r.LockID, r.LockedAt = lockID, now
	r.slide(now)
	if err := tx.Save(id, r); err != nil {
		return nil, err
	}
	s := r.session(id, now)
	s.LockID, s.BrokeLock = lockID, broke
	return s, nil
}

// Put implements state.Store.Put.
func Put(tx Tx, id string, data []byte, c state.Cond) (uint64, error) {
	r, err := live(tx, id, false)
	if err != nil {
		return 0, err
	}
	now := tx.Now()
	switch {
	case c.LockID != "" && r.LockID != c.LockID:
		return 0, state.ErrLockLost
	case c.LockID == "" && r.LockID != "":
		return 0, &state.LockedError{Age: max(now.Sub(r.LockedAt), 0)}
	case c.Version != 0 && c.Version != r.Version:
		return 0, state.ErrVersionMismatch
	}
	r.Data, r.Version = bytes.Clone(data), r.Version+1
	r.LockID, r.LockedAt = "", time.Time{}
	r.slide(now)
	return r.Version, tx.Save(id, r)
}

// Unlock implements state.Store.Unlock.
func Unlock(tx Tx, id, lockID string) error {
	r, err := live(tx, id, false)
	if err != nil {
		return err
	}
	if lockID == "" || r.LockID != lockID {
		return state.ErrLockLost
	}
	r.LockID, r.LockedAt = "", time.Time{}
	r.slide(tx.Now())
	return tx.Save(id, r)
}

// Touch implements state.Store.Touch.
func Touch(tx Tx, id string) error {
	r, err := live(tx, id, false)
	if err != nil {
		return err
	}
	if r.slide(tx.Now()) {
		return tx.Save(id, r)
	}
	return nil
}

// Delete implements state.Store.Delete.
func Delete(tx Tx, id string) error {
	if _, err := live(tx, id, true); err != nil {
		return err
	}
	return tx.Remove(id)
}

// Renew implements state.Store.Renew.
func Renew(tx Tx, id, newID string, grace time.Duration) error {
	r, err := live(tx, id, false)
	if err != nil {
		return err
	}
	now := tx.Now()
	if other, err := tx.Load(newID); err != nil {
		return err
	} else if other != nil && other.live(now) {
		return state.ErrExists
	}
	n := *r
	n.LockID, n.LockedAt = "", time.Time{}
	n.slide(now)
	r.Renewed, r.LockID, r.LockedAt = true, "", time.Time{}
	if end := now.Add(grace); end.Before(r.Expires) {
		r.Expires = end
	}
	if err := tx.Save(newID, &n); err != nil {
		return err
	}
	return tx.Save(id, r)
}

// Expired reports whether r expired by now, and whether it counts as an
// expired session (renewed ids do not).
func (r *Record) Expired(now time.Time) (expired, counts bool) {
	return !r.live(now), !r.Renewed
}

// LiveLocked reports whether r is a live session, and whether it is locked.
func (r *Record) LiveLocked(now time.Time) (live, locked bool) {
	if !r.live(now) || r.Renewed {
		return false, false
	}
	return true, r.LockID != ""
}

const encodingV1 = 1

// Marshal encodes r in a compact binary form (versioned).
func (r *Record) Marshal() []byte {
	b := make([]byte, 0, 64+len(r.LockID)+len(r.Data))
	b = append(b, encodingV1)
	b = binary.AppendUvarint(b, r.Version)
	b = appendBytes(b, []byte(r.LockID))
	for _, t := range []time.Time{r.LockedAt, r.Created, r.Deadline, r.Expires} {
		b = binary.AppendVarint(b, unixNano(t))
	}
	b = binary.AppendVarint(b, int64(r.Idle))
	flags := byte(0)
	if r.Renewed {
		flags = 1
	}
	b = append(b, flags)
	return appendBytes(b, r.Data)
}

// Unmarshal decodes what Marshal encoded.
func Unmarshal(b []byte) (*Record, error) {
	d := decoder{b: b}
	if v := d.byte(); v != encodingV1 {
		return nil, fmt.Errorf("decoding session record: unknown encoding %d", v)
	}
	r := &Record{Version: d.uvarint(), LockID: string(d.bytes())}
	for _, t := range []*time.Time{&r.LockedAt, &r.Created, &r.Deadline, &r.Expires} {
		if n := d.varint(); n != 0 {
			*t = time.Unix(0, n)
		}
	}
	r.Idle = time.Duration(d.varint())
	r.Renewed = d.byte()&1 != 0
	r.Data = bytes.Clone(d.bytes())
	if d.err != nil {
		return nil, fmt.Errorf("decoding session record: %w", d.err)
	}
	return r, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func appendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

var errShort = errors.New("truncated record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errShort
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}
