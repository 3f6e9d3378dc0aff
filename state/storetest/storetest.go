// Package storetest is the conformance suite every state.Store passes. A
// store's tests call Run with a constructor that returns a fresh, empty store
// (its own key prefix, schema or file) for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) state.Store { return memstore.New(memstore.Options{}) })
//	}
//
// Expiry and lock breaking run against the store's real clock (Redis TIME,
// PostgreSQL now()), so those subtests take about a second each.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/state"
)

// long is a lifetime no subtest outlives.
var long = state.Lifetime{Idle: time.Hour, Max: 24 * time.Hour}

// Run runs the whole suite. newStore must return an empty store; Run closes it.
func Run(t *testing.T, newStore func(t *testing.T) state.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, state.Store)
	}{
		{"CreateGet", testCreateGet},
		{"NotFound", testNotFound},
		{"LockPut", testLockPut},
		{"PutConditions", testPutConditions},
		{"Unlock", testUnlock},
		{"LockBreaking", testLockBreaking},
		{"SnapshotReadDoesNotWait", testSnapshotRead},
		{"Delete", testDelete},
		{"Renew", testRenew},
		{"IdleExpiry", testIdleExpiry},
		{"MaxLifetime", testMaxLifetime},
		{"SweepAndStats", testSweepAndStats},
		{"Counter", testCounter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, s state.Store, data []byte, life state.Lifetime) string {
	t.Helper()
	id := state.NewID()
	sess, err := s.Create(ctxT(t), id, data, life)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if sess.Version != 1 || sess.Locked || sess.ID != id {
		t.Fatalf("Create: got version %d locked %v id %q, want 1 false %q", sess.Version, sess.Locked, sess.ID, id)
	}
	return id
}

func mustGet(t *testing.T, s state.Store, id string) *state.Session {
	t.Helper()
	sess, err := s.Get(ctxT(t), id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return sess
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func testCreateGet(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	big := bytes.Repeat([]byte{0, 0xff, 'a', '\n'}, 1<<18) // 1MiB
	for _, data := range [][]byte{{}, []byte("hello"), {0, 1, 2, 0xfe, 0xff, 0}, big} {
		id := create(t, s, data, long)
		got := mustGet(t, s, id)
		if !bytes.Equal(got.Data, data) || got.Data == nil {
			t.Fatalf("Get: got %d bytes, want the %d written", len(got.Data), len(data))
		}
		if got.Version != 1 || got.Locked || got.LockID != "" || got.Renewed {
			t.Fatalf("Get: got %+v, want version 1, unlocked", got)
		}
		if !got.Expires.After(time.Now().Add(30 * time.Minute)) {
			t.Fatalf("Expires: got %v, want about an hour from now", got.Expires)
		}
		got.Data = append(got.Data[:0], 'x') // callers may modify data
		if again := mustGet(t, s, id); !bytes.Equal(again.Data, data) {
			t.Fatal("modifying Get's data changed the stored session")
		}
		_, err := s.Create(ctx, id, []byte("other"), long)
		wantErr(t, "Create with a taken id", err, state.ErrExists)
	}
}

func testNotFound(t *testing.T, s state.Store) {
	ctx, id := ctxT(t), state.NewID()
	_, err := s.Get(ctx, id)
	wantErr(t, "Get", err, state.ErrNotFound)
	_, err = s.Lock(ctx, id, time.Minute)
	wantErr(t, "Lock", err, state.ErrNotFound)
	_, err = s.Put(ctx, id, []byte("x"), state.Cond{})
	wantErr(t, "Put (a store never adopts an id)", err, state.ErrNotFound)
	wantErr(t, "Unlock", s.Unlock(ctx, id, "lock"), state.ErrNotFound)
	wantErr(t, "Touch", s.Touch(ctx, id), state.ErrNotFound)
	wantErr(t, "Delete", s.Delete(ctx, id), state.ErrNotFound)
	wantErr(t, "Renew", s.Renew(ctx, id, state.NewID(), time.Minute), state.ErrNotFound)
}

func testLockPut(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	id := create(t, s, []byte("v1"), long)
	l, err := s.Lock(ctx, id, time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if l.LockID == "" || !l.Locked || l.BrokeLock || string(l.Data) != "v1" || l.Version != 1 {
		t.Fatalf("Lock: got %+v, want a lock id and the data at version 1", l)
	}
	snap := mustGet(t, s, id)
	if !snap.Locked || snap.LockID != "" {
		t.Fatalf("Get while locked: got locked %v lock id %q, want true and hidden", snap.Locked, snap.LockID)
	}
	_, err = s.Lock(ctx, id, time.Minute)
	var le *state.LockedError
	if !errors.As(err, &le) || !errors.Is(err, state.ErrLocked) || le.Age < 0 || le.Age > time.Minute {
		t.Fatalf("second Lock: got %v, want a *LockedError with a small age", err)
	}
	v, err := s.Put(ctx, id, []byte("v2"), state.Cond{LockID: l.LockID})
	if err != nil || v != 2 {
		t.Fatalf("Put with lock: got %d, %v; want 2, nil", v, err)
	}
	got := mustGet(t, s, id)
	if string(got.Data) != "v2" || got.Version != 2 || got.Locked {
		t.Fatalf("after Put: got %q version %d locked %v, want v2 2 false (Put releases the lock)", got.Data, got.Version, got.Locked)
	}
	_, err = s.Put(ctx, id, []byte("again"), state.Cond{LockID: l.LockID})
	wantErr(t, "Put with a released lock", err, state.ErrLockLost)
	l2, err := s.Lock(ctx, id, time.Minute)
	if err != nil || l2.LockID == l.LockID || l2.BrokeLock {
		t.Fatalf("Lock after release: got %+v, %v; want a new lock id", l2, err)
	}
}

func testPutConditions(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	id := create(t, s, []byte("a"), long)
	if v, err := s.Put(ctx, id, []byte("b"), state.Cond{Version: 1}); err != nil || v != 2 {
		t.Fatalf("Put If-Match 1: got %d, %v; want 2, nil", v, err)
	}
	_, err := s.Put(ctx, id, []byte("c"), state.Cond{Version: 1})
	wantErr(t, "Put If-Match stale", err, state.ErrVersionMismatch)
	if v, err := s.Put(ctx, id, []byte("c"), state.Cond{}); err != nil || v != 3 {
		t.Fatalf("unconditional Put: got %d, %v; want 3, nil", v, err)
	}
	l, err := s.Lock(ctx, id, time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	_, err = s.Put(ctx, id, []byte("d"), state.Cond{})
	wantErr(t, "Put without the lock while locked", err, state.ErrLocked)
	_, err = s.Put(ctx, id, []byte("d"), state.Cond{LockID: "not-the-lock"})
	wantErr(t, "Put with another lock", err, state.ErrLockLost)
	_, err = s.Put(ctx, id, []byte("d"), state.Cond{LockID: l.LockID, Version: 2})
	wantErr(t, "Put with the lock and a stale version", err, state.ErrVersionMismatch)
	if v, err := s.Put(ctx, id, []byte("d"), state.Cond{LockID: l.LockID, Version: 3}); err != nil || v != 4 {
		t.Fatalf("Put with lock and version: got %d, %v; want 4, nil", v, err)
	}
	if got := mustGet(t, s, id); string(got.Data) != "d" {
		t.Fatalf("got %q, want d", got.Data)
	}
}

func testUnlock(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	id := create(t, s, []byte("a"), long)
	l, err := s.Lock(ctx, id, time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	wantErr(t, "Unlock with another lock", s.Unlock(ctx, id, "other"), state.ErrLockLost)
	if err := s.Unlock(ctx, id, l.LockID); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	wantErr(t, "second Unlock", s.Unlock(ctx, id, l.LockID), state.ErrLockLost)
	got := mustGet(t, s, id)
	if got.Locked || got.Version != 1 || string(got.Data) != "a" {
		t.Fatalf("after Unlock: got %+v, want unlocked and unchanged", got)
	}
}

// testLockBreaking: a holder that never comes back is broken after the lock
// timeout, and its late write is refused.
func testLockBreaking(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const breakAfter = 300 * time.Millisecond
	id := create(t, s, []byte("original"), long)
	stuck, err := s.Lock(ctx, id, breakAfter)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	start := time.Now()
	var next *state.Session
	for {
		next, err = s.Lock(ctx, id, breakAfter)
		if err == nil {
			break
		}
		var le *state.LockedError
		if !errors.As(err, &le) {
			t.Fatalf("Lock while held: got %v, want *LockedError", err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("stuck lock never broken")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if waited := time.Since(start); waited < breakAfter-50*time.Millisecond {
		t.Fatalf("lock broken after %v, want at least %v", waited, breakAfter)
	}
	if !next.BrokeLock || next.LockID == stuck.LockID {
		t.Fatalf("breaking Lock: got %+v, want BrokeLock and a new lock id", next)
	}
	if v, err := s.Put(ctx, id, []byte("new"), state.Cond{LockID: next.LockID}); err != nil || v != 2 {
		t.Fatalf("Put by the new holder: got %d, %v", v, err)
	}
	_, err = s.Put(ctx, id, []byte("late"), state.Cond{LockID: stuck.LockID})
	wantErr(t, "late Put by the broken holder", err, state.ErrLockLost)
	wantErr(t, "late Unlock by the broken holder", s.Unlock(ctx, id, stuck.LockID), state.ErrLockLost)
	if got := mustGet(t, s, id); string(got.Data) != "new" || got.Version != 2 {
		t.Fatalf("got %q version %d, want new 2", got.Data, got.Version)
	}
}

func testSnapshotRead(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	id := create(t, s, []byte("snap"), long)
	if _, err := s.Lock(ctx, id, time.Hour); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	for range 20 {
		start := time.Now()
		got := mustGet(t, s, id)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Get took %v behind a held lock", d)
		}
		if string(got.Data) != "snap" || !got.Locked || got.LockAge < 0 {
			t.Fatalf("Get: got %+v, want the data and Locked", got)
		}
	}
}

func testDelete(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	id := create(t, s, []byte("a"), long)
	l, err := s.Lock(ctx, id, time.Minute)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete of a locked session: %v", err)
	}
	_, err = s.Get(ctx, id)
	wantErr(t, "Get after Delete", err, state.ErrNotFound)
	_, err = s.Put(ctx, id, []byte("b"), state.Cond{LockID: l.LockID})
	wantErr(t, "Put after Delete", err, state.ErrNotFound)
	wantErr(t, "second Delete", s.Delete(ctx, id), state.ErrNotFound)
	if _, err := s.Create(ctx, id, []byte("c"), long); err != nil {
		t.Fatalf("Create with a deleted id: %v", err)
	}
}

func testRenew(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	id := create(t, s, []byte("before"), long)
	if _, err := s.Put(ctx, id, []byte("data"), state.Cond{}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if _, err := s.Lock(ctx, id, time.Minute); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	taken := create(t, s, []byte("x"), long)
	wantErr(t, "Renew to a taken id", s.Renew(ctx, id, taken, time.Minute), state.ErrExists)
	newID := state.NewID()
	if err := s.Renew(ctx, id, newID, 400*time.Millisecond); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	n := mustGet(t, s, newID)
	if string(n.Data) != "data" || n.Version != 2 || n.Locked || n.Renewed {
		t.Fatalf("new id: got %+v, want data at version 2, unlocked", n)
	}
	old := mustGet(t, s, id)
	if string(old.Data) != "data" || !old.Renewed {
		t.Fatalf("old id in grace: got %+v, want the data, Renewed", old)
	}
	_, err := s.Lock(ctx, id, time.Minute)
	wantErr(t, "Lock of a renewed id", err, state.ErrRenewed)
	_, err = s.Put(ctx, id, []byte("lost"), state.Cond{})
	wantErr(t, "Put to a renewed id", err, state.ErrRenewed)
	wantErr(t, "Renew of a renewed id", s.Renew(ctx, id, state.NewID(), time.Minute), state.ErrRenewed)
	wantErr(t, "Touch of a renewed id", s.Touch(ctx, id), state.ErrRenewed)
	eventually(t, "old id gone after the grace period", func() bool {
		_, err := s.Get(ctx, id)
		return errors.Is(err, state.ErrNotFound)
	})
	if got := mustGet(t, s, newID); string(got.Data) != "data" {
		t.Fatalf("new id after grace: got %q", got.Data)
	}
}

func testIdleExpiry(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const idle = 600 * time.Millisecond
	life := state.Lifetime{Idle: idle, Max: time.Hour}
	kept, dropped := create(t, s, []byte("kept"), life), create(t, s, []byte("dropped"), life)
	start := time.Now()
	// Accessing kept (Get, Touch, Lock+Put in turn) slides its expiry;
	// dropped is left alone and must expire.
	for i := 0; time.Since(start) < 3*idle; i++ {
		time.Sleep(idle / 4)
		var err error
		switch i % 3 {
		case 0:
			_, err = s.Get(ctx, kept)
		case 1:
			err = s.Touch(ctx, kept)
		case 2:
			var l *state.Session
			if l, err = s.Lock(ctx, kept, time.Minute); err == nil {
				_, err = s.Put(ctx, kept, []byte("kept"), state.Cond{LockID: l.LockID})
			}
		}
		if err != nil {
			t.Fatalf("access %d to a session accessed every %v with idle %v after %v: %v", i, idle/4, idle, time.Since(start), err)
		}
	}
	_, err := s.Get(ctx, dropped)
	wantErr(t, "Get of an idle session", err, state.ErrNotFound)
	_, err = s.Lock(ctx, dropped, time.Minute)
	wantErr(t, "Lock of an idle session", err, state.ErrNotFound)
	if _, err := s.Create(ctx, dropped, []byte("again"), life); err != nil {
		t.Fatalf("Create with an expired id: %v", err)
	}
}

func testMaxLifetime(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	life := state.Lifetime{Idle: 10 * time.Second, Max: 700 * time.Millisecond}
	id := create(t, s, []byte("a"), life)
	if got := mustGet(t, s, id); time.Until(got.Expires) > life.Max+time.Second {
		t.Fatalf("Expires in %v, want at most the max lifetime %v", time.Until(got.Expires), life.Max)
	}
	eventually(t, "session gone after its max lifetime although touched", func() bool {
		err := s.Touch(ctx, id)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			t.Fatalf("Touch: %v", err)
		}
		return err != nil
	})
}

func testSweepAndStats(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	short := state.Lifetime{Idle: 300 * time.Millisecond, Max: time.Hour}
	for range 3 {
		create(t, s, nil, short)
	}
	a, b := create(t, s, []byte("a"), long), create(t, s, []byte("b"), long)
	if _, err := s.Lock(ctx, a, time.Minute); err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if err := s.Renew(ctx, b, state.NewID(), time.Hour); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st != (state.Stats{Sessions: 5, Locked: 1}) {
		t.Fatalf("Stats: got %+v, want 5 sessions (a renewed id is not one), 1 locked", st)
	}
	expired := 0
	eventually(t, "3 sessions swept", func() bool {
		n, err := s.Sweep(ctx)
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		expired += n
		return expired >= 3
	})
	if expired != 3 {
		t.Fatalf("Sweep: got %d expired, want 3", expired)
	}
	if st, err := s.Stats(ctx); err != nil || st != (state.Stats{Sessions: 2, Locked: 1}) {
		t.Fatalf("Stats after sweep: got %+v, %v; want 2 sessions, 1 locked", st, err)
	}
	if n, err := s.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second Sweep: got %d, %v; want 0", n, err)
	}
}

// testCounter: many goroutines increment one counter with lock+put; no update
// is lost.
func testCounter(t *testing.T, s state.Store) {
	ctx := ctxT(t)
	const workers, total = 16, 1000
	id := create(t, s, []byte("0"), long)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan struct{}, total)
	for range total {
		next <- struct{}{}
	}
	close(next)
	for range workers {
		wg.Go(func() {
			for range next {
				if err := increment(ctx, s, id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := mustGet(t, s, id)
	if string(got.Data) != strconv.Itoa(total) || got.Version != total+1 {
		t.Fatalf("counter: got %q at version %d, want %d at version %d", got.Data, got.Version, total, total+1)
	}
}

func increment(ctx context.Context, s state.Store, id string) error {
	backoff := 100 * time.Microsecond
	for {
		l, err := s.Lock(ctx, id, time.Minute)
		if errors.Is(err, state.ErrLocked) {
			time.Sleep(backoff) // stores do not queue; the HTTP service does
			backoff = min(2*backoff, 5*time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(l.Data))
		if err != nil {
			return err
		}
		_, err = s.Put(ctx, id, []byte(strconv.Itoa(n+1)), state.Cond{LockID: l.LockID, Version: l.Version})
		return err
	}
}

// eventually polls cond for up to 10s: expiry runs on the store's own clock.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
