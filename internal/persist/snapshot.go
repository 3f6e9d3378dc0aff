package persist

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ErrCorrupt is returned (wrapped) by Load and ReadSnapshot for a snapshot
// that is truncated, has a bad checksum or is not a snapshot at all.
var ErrCorrupt = errors.New("persist: corrupt snapshot")

// Snapshot file format, version 1, all integers unsigned varints:
//
//	magic "fulcrum-persist\n" | version 1
//	per entry: 1 | len(key) key | len(server) server | seen (unix seconds)
//	0 | number of entries | CRC-32C (4 bytes, big endian) of all before it
//
// Entries are written shard by shard, each shard oldest first.
const (
	snapMagic   = "fulcrum-persist\n"
	snapVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot writes every live entry of t to w and returns how many.
func (t *Table) WriteSnapshot(w io.Writer) (int, error) {
	n, _, err := t.writeSnapshot(w)
	return n, err
}

// writeSnapshot also reports whether any shard was dirty (changed) or
// touched (used) since the previous snapshot, clearing those flags.
func (t *Table) writeSnapshot(w io.Writer) (int, [2]bool, error) {
	var flags [2]bool
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), 64<<10)
	var tmp [binary.MaxVarintLen64]byte
	uvarint := func(v uint64) { bw.Write(binary.AppendUvarint(tmp[:0], v)) }
	bw.WriteString(snapMagic)
	uvarint(snapVersion)
	count := 0
	var buf []Entry
	for si := range t.shards {
		buf = t.copyShard(&t.shards[si], buf[:0], &flags)
		for _, e := range buf {
			uvarint(1)
			uvarint(uint64(len(e.Key)))
			bw.WriteString(e.Key)
			uvarint(uint64(len(e.Server)))
			bw.WriteString(e.Server)
			uvarint(uint64(e.Seen.Unix()))
			count++
		}
	}
	uvarint(0)
	uvarint(uint64(count))
	if err := bw.Flush(); err != nil {
		return 0, flags, fmt.Errorf("writing snapshot: %w", err)
	}
	if _, err := w.Write(binary.BigEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return 0, flags, fmt.Errorf("writing snapshot: %w", err)
	}
	return count, flags, nil
}

// ReadSnapshot decodes a snapshot, calling f for each entry in file order.
// Nothing is trusted: lengths are bounded and the checksum is checked at
// the end, so f may have seen entries of a file that then fails with
// ErrCorrupt.
func ReadSnapshot(r io.Reader, f func(key, server []byte, seen uint32)) (int, error) {
	crc := crc32.New(castagnoli)
	br := bufio.NewReaderSize(r, 64<<10)
	tr := &teeByteReader{r: br, h: crc}
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(tr, magic); err != nil || string(magic) != snapMagic {
		return 0, fmt.Errorf("%w: not a snapshot", ErrCorrupt)
	}
	if v, err := binary.ReadUvarint(tr); err != nil || v != snapVersion {
		return 0, fmt.Errorf("%w: unknown version", ErrCorrupt)
	}
	var key, srv []byte
	count := 0
	for {
		tag, err := binary.ReadUvarint(tr)
		if err != nil {
			return count, fmt.Errorf("%w: truncated after %d entries", ErrCorrupt, count)
		}
		if tag == 0 {
			break
		}
		if tag != 1 {
			return count, fmt.Errorf("%w: bad record tag %d", ErrCorrupt, tag)
		}
		if key, err = readField(tr, key, MaxKeyLen); err != nil {
			return count, err
		}
		if srv, err = readField(tr, srv, MaxServerLen); err != nil {
			return count, err
		}
		seen, err := binary.ReadUvarint(tr)
		if err != nil || seen > 1<<32-1 {
			return count, fmt.Errorf("%w: bad time in entry %d", ErrCorrupt, count)
		}
		f(key, srv, uint32(seen))
		count++
	}
	n, err := binary.ReadUvarint(tr)
	if err != nil || n != uint64(count) {
		return count, fmt.Errorf("%w: entry count does not match", ErrCorrupt)
	}
	sum := crc.Sum32()
	var want [4]byte
	if _, err := io.ReadFull(br, want[:]); err != nil || binary.BigEndian.Uint32(want[:]) != sum {
		return count, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return count, nil
}

func readField(tr *teeByteReader, buf []byte, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(tr)
	if err != nil || n == 0 || n > uint64(limit) {
		return buf, fmt.Errorf("%w: bad field length", ErrCorrupt)
	}
	buf = slices.Grow(buf[:0], int(n))[:n]
	if _, err := io.ReadFull(tr, buf); err != nil {
		return buf, fmt.Errorf("%w: truncated field", ErrCorrupt)
	}
	return buf, nil
}

// teeByteReader hashes what it reads.
type teeByteReader struct {
	r *bufio.Reader
	h io.Writer
}

func (t *teeByteReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.h.Write(p[:n])
	return n, err
}

func (t *teeByteReader) ReadByte() (byte, error) {
	b, err := t.r.ReadByte()
	if err == nil {
		t.h.Write([]byte{b})
	}
	return b, err
}

// Save writes a snapshot of t to path atomically: a temporary file in the
// same directory, synced, then renamed over path. The file is mode 0600:
// keys are session ids.
func (t *Table) Save(path string) (int, error) {
	n, _, err := t.save(path)
	return n, err
}

func (t *Table) save(path string) (int, [2]bool, error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, [2]bool{true, true}, fmt.Errorf("saving persistence table: %w", err)
	}
	n, flags, err := t.writeSnapshot(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, [2]bool{true, true}, fmt.Errorf("saving persistence table: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() // make the rename durable; not all systems support it
		d.Close()
	}
	return n, flags, nil
}

// Load adds the entries of the snapshot at path to t, dropping those
// expired by now, oldest first so the idle order survives a restart, and
// returns how many were added. A missing file is not an error (a first
// start): it adds none. A corrupt file adds none and returns ErrCorrupt.
// Load does not call the change hook.
func (t *Table) Load(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("loading persistence table: %w", err)
	}
	defer f.Close()
	return t.LoadFrom(f)
}

// LoadFrom is Load from a reader: it adds the live entries of a snapshot
// read from r, or none if it is corrupt.
func (t *Table) LoadFrom(r io.Reader) (int, error) {
	type rec struct {
		key, srv string
		seen     uint32
	}
	now := t.clock()
	var recs []rec
	names := map[string]string{} // one copy of each server name
	_, err := ReadSnapshot(r, func(key, srv []byte, seen uint32) {
		if t.expired(now, seen) {
			return
		}
		name, ok := names[string(srv)]
		if !ok {
			name = string(srv)
			names[name] = name
		}
		recs = append(recs, rec{string(key), name, min(seen, now)})
	})
	if err != nil {
		return 0, fmt.Errorf("loading persistence table: %w", err)
	}
	slices.SortStableFunc(recs, func(a, b rec) int { return int(int64(a.seen) - int64(b.seen)) })
	for _, r := range recs {
		s := t.shardFor(maphash.String(t.seed, r.key))
		s.mu.Lock()
		if i, ok := s.m[r.key]; ok {
			s.remove(i) // a duplicate in the file: the later (newer) one wins
		}
		s.insert(r.key, s.serverID(r.srv), r.seen)
		s.mu.Unlock()
	}
	return len(recs), nil
}

// Snapshotter keeps a table on disk: every Every it sweeps expired entries
// and saves the table if it changed, and it saves once more when stopped.
type Snapshotter struct {
	// Table is the table to keep.
	Table *Table
	// Path is the snapshot file.
	Path string
	// Every is the time between sweeps and saves (default 10s). A table
	// whose keys were only used, not changed, is saved at most every
	// quarter timeout (at least Every), so the idle times on disk stay
	// close enough that a restart does not expire live sessions.
	Every time.Duration
	// Logger receives save failures; nil discards.
	Logger *slog.Logger
}

// Run sweeps and saves until ctx is done, then saves a last time and
// returns that save's error. The composition root runs it in its group
// after Table.Load.
func (s *Snapshotter) Run(ctx context.Context) error {
	every := s.Every
	if every <= 0 {
		every = 10 * time.Second
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastSave := s.Table.now()
	var pending [2]bool // changes taken from the shards but not yet on disk
	for {
		select {
		case <-ctx.Done():
			_, _, err := s.Table.save(s.Path)
			if err != nil {
				log.Error("saving persistence table", "path", s.Path, "err", err)
			}
			return err
		case <-tick.C:
		}
		s.Table.Sweep()
		dirty, touched := s.Table.pending()
		pending[0], pending[1] = pending[0] || dirty, pending[1] || touched
		idleSave := max(every, s.Table.Timeout()/4)
		if !pending[0] && !(pending[1] && s.Table.now().Sub(lastSave) >= idleSave) {
			continue
		}
		if _, _, err := s.Table.save(s.Path); err != nil {
			log.Error("saving persistence table", "path", s.Path, "err", err)
			continue
		}
		lastSave, pending = s.Table.now(), [2]bool{}
	}
}

// pending reports, and clears, whether any shard changed or was used since
// the last call or save.
func (t *Table) pending() (dirty, touched bool) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		dirty, touched = dirty || s.dirty, touched || s.touched
		s.dirty, s.touched = false, false
		s.mu.Unlock()
	}
	return dirty, touched
}
