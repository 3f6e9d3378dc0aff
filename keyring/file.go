package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileVersion is the key file format this package reads and writes.
const fileVersion = 1

// maxFileSize bounds what Load reads; a ring of a hundred keys is under 20 KiB.
const maxFileSize = 1 << 20

// fileRing is the JSON form of a ring (see README.md).
type fileRing struct {
	Version int       `json:"version"`
	Keys    []fileKey `json:"keys"`
}

type fileKey struct {
	ID         string    `json:"id"`
	Secret     string    `json:"secret"` // standard base64 of 32 bytes
	Created    time.Time `json:"created"`
	ActiveFrom time.Time `json:"active_from"`
	Expires    time.Time `json:"expires,omitzero"`
}

// Load reads a ring from a key file written by Save or `fulcrum keygen`.
//
// It refuses, with an error naming the file and the problem: a file that is
// not a regular file or that group or others may read (mode & 0o077 != 0);
// malformed JSON, unknown fields or another format version; a key with a bad
// id, a secret that is not 32 bytes of standard base64, or a secret that is
// all zero, one repeated byte, a counting sequence, printable text or a short
// repeated pattern (placeholders and passwords, never the output of a random
// generator); two keys sharing an id or a secret; and a file with no key that
// has not expired (by time.Now). Every key problem is reported, not only the
// first.
func Load(path string) (*Ring, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	var fr fileRing
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fr); err != nil {
		return nil, fmt.Errorf("keyring: %s: %s", path, describeJSONError(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("keyring: %s: unexpected data after the JSON object", path)
	}
	switch {
	case fr.Version == 0:
		return nil, fmt.Errorf("keyring: %s: missing \"version\" (this fulcrum reads version %d)", path, fileVersion)
	case fr.Version != fileVersion:
		return nil, fmt.Errorf("keyring: %s: unsupported version %d (this fulcrum reads version %d)", path, fr.Version, fileVersion)
	case len(fr.Keys) == 0:
		return nil, fmt.Errorf("keyring: %s: no keys; create a ring with: fulcrum keygen -o %s", path, path)
	}
	keys, err := parseKeys(path, fr.Keys)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	usable := false
	for _, e := range keys {
		usable = usable || !e.expiredAt(now)
	}
	if !usable {
		return nil, fmt.Errorf("keyring: %s: no usable key: every key has expired; create a ring with: fulcrum keygen -o FILE", path)
	}
	sortEntries(keys)
	r := new(Ring)
	r.snap.Store(&snapshot{keys: keys})
	return r, nil
}

// readKeyFile opens path, checks it is a private regular file, and reads it.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // the opened file, not the name: no race with a swap
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keyring: %s: mode %04o lets group or others read the keys; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring: reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("keyring: %s: larger than %d bytes; not a key file", path, maxFileSize)
	}
	return data, nil
}

// parseKeys validates every key of the file and reports every problem.
func parseKeys(path string, fks []fileKey) ([]*entry, error) {
	var problems []error
	bad := func(i int, fk fileKey, format string, args ...any) {
		where := fmt.Sprintf("keys[%d]", i)
		if fk.ID != "" {
			where += fmt.Sprintf(" (id %q)", fk.ID)
		}
		problems = append(problems, fmt.Errorf("keyring: %s: %s: %s", path, where, fmt.Sprintf(format, args...)))
	}
	keys := make([]*entry, 0, len(fks))
	ids := map[string]int{}
	secrets := map[[secretSize]byte]int{}
	for i, fk := range fks {
		e := &entry{cache: new(aeadCache)}
		ok := true
		if id, err := hex.DecodeString(fk.ID); err != nil || len(id) != idSize || fk.ID != strings.ToLower(fk.ID) {
			bad(i, fk, "id must be %d lower-case hex digits", 2*idSize)
			ok = false
		} else if j, dup := ids[fk.ID]; dup {
			bad(i, fk, "same id as keys[%d]", j)
			ok = false
		} else {
			ids[fk.ID] = i
			copy(e.id[:], id)
		}
		secret, err := base64.StdEncoding.DecodeString(fk.Secret)
		switch {
		case fk.Secret == "":
			bad(i, fk, "missing \"secret\"")
			ok = false
		case err != nil || len(secret) != secretSize:
			bad(i, fk, "secret must be %d bytes in standard base64 (44 characters)", secretSize)
			ok = false
		default:
			copy(e.secret[:], secret)
			clear(secret)
			if why := weakSecret(e.secret[:]); why != "" {
				bad(i, fk, "secret is %s, not a random key; generate one with: fulcrum keygen -o FILE", why)
				ok = false
			} else if j, dup := secrets[e.secret]; dup {
				bad(i, fk, "same secret as keys[%d]", j)
				ok = false
			} else {
				secrets[e.secret] = i
			}
		}
		if fk.Created.IsZero() {
			bad(i, fk, "missing \"created\"")
			ok = false
		}
		if fk.ActiveFrom.IsZero() {
			bad(i, fk, "missing \"active_from\"")
			ok = false
		}
		if !fk.Expires.IsZero() && !fk.Expires.After(fk.ActiveFrom) {
			bad(i, fk, "\"expires\" %s is not after \"active_from\" %s", fk.Expires.Format(time.RFC3339), fk.ActiveFrom.Format(time.RFC3339))
			ok = false
		}
		if ok {
			e.Key = Key{ID: fk.ID, Created: fk.Created, ActiveFrom: fk.ActiveFrom, Expires: fk.Expires}
			keys = append(keys, e)
		}
	}
	clear(secrets)
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return keys, nil
}

// describeJSONError turns a decoding error into "line L, column C: problem".
func describeJSONError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("%s: malformed JSON: %v", position(data, syn.Offset), syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s: %s must be a JSON %s, not %s", position(data, typ.Offset), field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return "empty file, not a key file"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of file"
	}
	return "malformed JSON: " + err.Error()
}

// position names the line and column of the byte before offset off: the
// decoder's offsets count the bytes read, including the offending one.
func position(data []byte, off int64) string {
	off = min(max(off-1, 0), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

// weakSecret says why a secret cannot have come from a random generator, or
// returns "". Each rule matches a random 32-byte secret with probability below
// 2^-40, so it never refuses a real key, and each catches a kind of
// placeholder people type: zeros, 0x01 repeated, 00 01 02 .., "changeme..",
// a password, 0xdeadbeef repeated. The reason never quotes the secret.
func weakSecret(b []byte) string {
	var seen [256]bool
	distinct, printable := 0, true
	up, down := true, true
	for i, c := range b {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
		printable = printable && c >= 0x20 && c < 0x7f
		if i > 0 {
			up = up && c == b[i-1]+1
			down = down && c == b[i-1]-1
		}
	}
	switch {
	case distinct == 1 && b[0] == 0:
		return "all zero bytes"
	case distinct == 1:
		return fmt.Sprintf("one byte repeated (0x%02x)", b[0])
	case up || down:
		return "a counting sequence"
	case printable:
		return "printable text (a password or placeholder)"
	case distinct < 16:
		return fmt.Sprintf("a repeated pattern (%d distinct byte values)", distinct)
	}
	return ""
}

// Save writes the ring to path atomically: a temporary file in the same
// directory, mode 0600, synced, then renamed over path. A reader never sees a
// half-written file and a crash leaves either the old ring or the new one. If
// path is a symbolic link, the link is replaced by the file.
func (r *Ring) Save(path string) error {
	s := r.load()
	if len(s.keys) == 0 {
		return fmt.Errorf("keyring: save %s: the ring has no keys", path)
	}
	fr := fileRing{Version: fileVersion, Keys: make([]fileKey, len(s.keys))}
	for i, e := range s.keys {
		fr.Keys[i] = fileKey{
			ID:         e.ID,
			Secret:     base64.StdEncoding.EncodeToString(e.secret[:]),
			Created:    e.Created,
			ActiveFrom: e.ActiveFrom,
			Expires:    e.Expires,
		}
	}
	data, err := json.MarshalIndent(fr, "", "  ")
	if err != nil {
		return fmt.Errorf("keyring: save %s: %w", path, err)
	}
	data = append(data, '\n')
	defer clear(data)
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("keyring: save %s: %w", path, err)
	}
	return nil
}

// writeFileAtomic writes data to a 0600 temporary file next to path and
// renames it over path.
func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*") // created 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable. Some file systems cannot sync a directory;
	// the file itself is already on disk, so that is not an error.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
