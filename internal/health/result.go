package health

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// EvidenceBytes is how much of what was sent and received a Result keeps.
const EvidenceBytes = 4 << 10

// maxSegments bounds the segments a Result records.
const maxSegments = 128

// Result is the verdict of one check and its evidence.
type Result struct {
	OK       bool
	At       time.Time     // when the check started
	Duration time.Duration // from At (before the connect, or the write on a kept connection) to the verdict
	// Reason is human-readable: the rule that failed, or what passed. A
	// failure on a reused connection ends with "(reused connection, check
	// N of M)".
	Reason string
	// Conn is the connection the verdict came from: new or reused.
	Conn Connection
	// Status is the HTTP status, 0 for other types or when none arrived.
	Status int
	// Sent and Received keep the first EvidenceBytes of each direction.
	Sent     []byte
	Received []byte
	// Segments are the reads and writes in the order they happened.
	Segments []Segment
	// Hash is the hex SHA-256 of the (decoded, masked) body, when hashing.
	Hash string
	// HashChanged is set when the pool moved to a new hash together and
	// this server adopted it (hash_fleet).
	HashChanged bool
	// Notes are tolerated deviations and script step outcomes.
	Notes []string
}

// Connection says which connection a check ran on.
type Connection struct {
	// Check counts the checks the connection has carried, this one
	// included: 1 is a new connection, 2 or more a reused one, 0 none
	// (the connect failed, or type none).
	Check int
	// Max is the most checks it may carry (reuse_max); 1 when it is
	// closed after this check whatever happens (reuse off, tcp, script,
	// fulcrum probe).
	Max int
}

// Reused reports whether the connection carried an earlier check.
func (c Connection) Reused() bool { return c.Check > 1 }

// String renders c as "new connection", "new connection (check 1 of 10)"
// or "reused connection (check 4 of 10)"; "" when there was none.
func (c Connection) String() string {
	switch {
	case c.Check == 0:
		return ""
	case c.Max <= 1:
		return "new connection"
	}
	kind := "new"
	if c.Reused() {
		kind = "reused"
	}
	return kind + " connection (check " + strconv.Itoa(c.Check) + " of " + strconv.Itoa(c.Max) + ")"
}

// Dir is the direction of a Segment.
type Dir uint8

// Segment directions.
const (
	DirSent Dir = iota + 1
	DirReceived
	// DirRetry marks where a check found its reused connection closed by
	// the server and went on over a new connection; Offset and Len are 0.
	DirRetry
)

// Segment is one write, or one read as it arrived from the network (a read
// returns what the kernel had, so a boundary here is where the server's
// data paused). Offset indexes Result.Sent or Result.Received.
type Segment struct {
	Dir    Dir
	Offset int
	Len    int
	// At is the time since the check's first connection was ready (dialled,
	// or taken from the idle ones): a retry on a new connection continues
	// the same clock.
	At time.Duration
}

// recorder wraps the connection a probe talks over and records what
// crosses it, within EvidenceBytes. Its buffers are reused across probes
// (see scratch); fill copies them out.
type recorder struct {
	net.Conn
	start      time.Time
	sent, recv []byte
	nSent      int
	nRecv      int
	segs       []Segment
}

// reset empties r, keeping its buffers.
func (r *recorder) reset() {
	*r = recorder{sent: r.sent[:0], recv: r.recv[:0], segs: r.segs[:0]}
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	if n > 0 {
		r.note(DirReceived, r.nRecv, n)
		r.recv = keep(r.recv, p[:n])
		r.nRecv += n
	}
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.Conn.Write(p)
	if n > 0 {
		r.note(DirSent, r.nSent, n)
		r.sent = keep(r.sent, p[:n])
		r.nSent += n
	}
	return n, err
}

// markRetry records where the check moves to a new connection.
func (r *recorder) markRetry() { r.note(DirRetry, 0, 0) }

func (r *recorder) note(d Dir, off, n int) {
	if len(r.segs) < maxSegments && off < EvidenceBytes {
		r.segs = append(r.segs, Segment{Dir: d, Offset: off, Len: n, At: time.Since(r.start)})
	}
}

func keep(dst, p []byte) []byte {
	if room := EvidenceBytes - len(dst); room > 0 {
		dst = append(dst, p[:min(room, len(p))]...)
	}
	return dst
}

// fill copies the evidence into res, sized exactly (Sent and Received
// share one allocation), so results kept in history hold no spare
// capacity and nothing of the reused buffers.
func (r *recorder) fill(res *Result) {
	if n := len(r.sent) + len(r.recv); n > 0 {
		b := make([]byte, 0, n)
		b = append(b, r.sent...)
		b = append(b, r.recv...)
		res.Sent = nilIfEmpty(b[:len(r.sent):len(r.sent)])
		res.Received = nilIfEmpty(b[len(r.sent):])
	}
	if len(r.segs) > 0 {
		res.Segments = append([]Segment(nil), r.segs...)
	}
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// scratch is the memory one probe works in: the recorder's evidence
// buffers, the read buffer, the response and its body. It is pooled, so a
// probe allocates little beyond the Result it returns.
type scratch struct {
	rec  recorder
	br   *bufio.Reader
	resp Response
	body []byte
}

// maxPooledBody is the largest body buffer a pooled scratch keeps; a
// bigger one (a rare large page) is left to the garbage collector.
const maxPooledBody = 64 << 10

var scratchPool = sync.Pool{New: func() any {
	sc := &scratch{}
	sc.rec.sent = make([]byte, 0, 512)
	sc.rec.recv = make([]byte, 0, 1024)
	sc.rec.segs = make([]Segment, 0, 8)
	sc.br = bufio.NewReaderSize(&sc.rec, 4096)
	return sc
}}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// attach points the recorder at c. The check's first connection starts
// the evidence's clock; a second one (a retry) adds to the same evidence.
func (sc *scratch) attach(c net.Conn) {
	if sc.rec.Conn == nil {
		sc.rec.start = time.Now()
	}
	sc.rec.Conn = c
	sc.br.Reset(&sc.rec)
}

// resetResponse empties the response for another attempt.
func (sc *scratch) resetResponse() {
	clear(sc.resp.Header)
	clear(sc.resp.Notes)
	sc.resp = Response{Header: sc.resp.Header[:0], Notes: sc.resp.Notes[:0]}
}

func putScratch(sc *scratch) {
	sc.rec.reset()
	sc.br.Reset(&sc.rec)
	sc.resetResponse()
	scratchPool.Put(sc)
}

// keepBody keeps the (possibly grown) body buffer of resp for the next
// probe, unless it grew too big to pool.
func (sc *scratch) keepBody(resp *Response) {
	if resp != nil && cap(resp.Body) <= maxPooledBody && cap(resp.Body) > cap(sc.body) {
		sc.body = resp.Body[:0]
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// describe turns a network or reader error into a reason an operator can
// act on. It is the one place errors become reasons.
func describe(err error, timeout time.Duration, doing string) string {
	var re *ReadError
	if errors.As(err, &re) {
		doing = "waiting for " + string(re.Phase)
		if re.Phase == PhaseBody {
			doing = "reading body"
		}
		switch {
		case errors.Is(err, ErrNotHTTP), errors.Is(err, ErrMalformed),
			errors.Is(err, ErrHeadTooLarge), errors.Is(err, ErrBodyTooLarge):
			return re.Err.Error()
		}
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("timeout after %s %s", timeout, doing)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case isReset(err):
		return "connection reset " + doing
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the server " + doing
	}
	return doing + ": " + err.Error()
}
