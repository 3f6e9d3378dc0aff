package health

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Limits of the response reader. Together they bound the memory one probe
// can use however the server misbehaves.
const (
	MaxHeadBytes = 64 << 10 // status line + headers (+ chunk trailers)
	MaxBodyBytes = 1 << 20  // decoded body kept for body_match and hashing
	maxLineBytes = 8 << 10  // one chunk-size line
)

// Errors of ReadResponse, wrapped in a *ReadError.
var (
	ErrNotHTTP      = errors.New("not an HTTP response")
	ErrMalformed    = errors.New("malformed response")
	ErrHeadTooLarge = fmt.Errorf("response head over %d KiB", MaxHeadBytes>>10)
	ErrBodyTooLarge = fmt.Errorf("body too large (over %d KiB)", MaxBodyBytes>>10)
)

// Phase is the part of the response being read when an error happened.
type Phase string

// Phases of reading a response.
const (
	PhaseHead Phase = "response head"
	PhaseBody Phase = "body"
)

// ReadError is an error of ReadResponse: the phase it happened in and the
// underlying cause (an ErrX sentinel, io.ErrUnexpectedEOF or a network error).
type ReadError struct {
	Phase Phase
	Err   error
}

func (e *ReadError) Error() string { return "reading " + string(e.Phase) + ": " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// Field is one header line, in the order received.
type Field struct{ Name, Value string }

// Framing says how the end of a body was found.
type Framing string

// Body framings.
const (
	FramingNone          Framing = "none"           // HEAD, 1xx, 204, 304
	FramingContentLength Framing = "content-length" // Content-Length bytes
	FramingChunked       Framing = "chunked"        // chunked transfer coding, decoded
	FramingClose         Framing = "close"          // read until the server closes
)

// Response is what ReadResponse understood of a reply.
type Response struct {
	Proto   string // e.g. "HTTP/1.1"
	Status  int
	Reason  string // the reason phrase, possibly empty
	Header  []Field
	Framing Framing
	Body    []byte   // decoded body (at most MaxBodyBytes)
	Notes   []string // tolerated deviations, for the transcript

	closed bool // the server closed the connection to end the reply
}

// Get returns the first value of the named header (case-insensitive).
func (r *Response) Get(name string) string {
	for _, f := range r.Header {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// ReadResponse reads one HTTP/1.x response from r, tolerating what real
// servers send: a head split into segments anywhere (also right after a
// CRLF), LF-only line ends, leading blank lines, folded headers, header
// lines without a colon, interim 1xx responses. head says the request was
// HEAD, so no body is read. Without Content-Length or chunked coding the
// body runs to close; a connection reset after the head of such a body ends
// it (servers like the ColdFusion ones in the field report close with RST).
//
// It never keeps more than MaxHeadBytes of head and MaxBodyBytes of body,
// and rejects non-HTTP input as soon as its first bytes show it. Timeouts
// are the caller's: set a deadline on the connection.
func ReadResponse(r io.Reader, head bool) (*Response, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 4096)
	}
	return readResponse(br, head, &Response{}, nil)
}

// readResponse is ReadResponse into resp (empty, but its Header and Notes
// may have capacity to reuse), decoding the body into body[:0]'s memory.
func readResponse(br *bufio.Reader, head bool, resp *Response, body []byte) (*Response, error) {
	rd := &respReader{br: br, budget: MaxHeadBytes, body: body[:0]}
	for {
		if err := rd.readHead(resp); err != nil {
			return resp, &ReadError{Phase: PhaseHead, Err: err}
		}
		// Interim responses (100 Continue, 103 Early Hints) precede the real one.
		if resp.Status >= 100 && resp.Status < 200 && resp.Status != 101 {
			resp.Notes = append(resp.Notes, fmt.Sprintf("skipped interim response %d", resp.Status))
			resp.Header = resp.Header[:0]
			continue
		}
		break
	}
	if err := rd.readBody(resp, head); err != nil {
		return resp, &ReadError{Phase: PhaseBody, Err: err}
	}
	return resp, nil
}

type respReader struct {
	br     *bufio.Reader
	budget int    // head bytes still allowed
	body   []byte // memory for the decoded body
	lfOnly bool
	head   string // the rest of a head read whole (see wholeHead)
	whole  bool   // lines come from head
}

// line reads one line within the head budget and returns it without its
// line end (LF or CRLF).
func (rd *respReader) line(limit *int, tooLarge error) (string, error) {
	var buf []byte
	for {
		frag, err := rd.br.ReadSlice('\n')
		*limit -= len(frag)
		if *limit < 0 {
			return "", tooLarge
		}
		if err == nil && buf == nil {
			buf = frag // the whole line was buffered: no copy before the string
			break
		}
		buf = append(buf, frag...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	} else {
		rd.lfOnly = true
	}
	return string(buf), nil
}

// checkPrefix fails fast when the first bytes cannot start "HTTP/", so
// garbage is reported at once instead of after the timeout.
func (rd *respReader) checkPrefix() error {
	const want = "HTTP/"
	n := 1
	for {
		p, err := rd.br.Peek(n)
		// Leading blank lines are tolerated.
		if len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
			if _, err := rd.br.ReadByte(); err != nil {
				return err
			}
			if rd.budget--; rd.budget < 0 {
				return ErrHeadTooLarge
			}
			n = 1
			continue
		}
		if k := min(len(p), len(want)); !bytes.EqualFold(p[:k], []byte(want[:k])) {
			p, _ = rd.br.Peek(min(max(rd.br.Buffered(), len(p)), 16))
			return fmt.Errorf("%w: starts with %q", ErrNotHTTP, p)
		}
		if len(p) >= len(want) {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(p) == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		n = max(len(p)+1, min(rd.br.Buffered(), len(want)))
	}
}

// wholeHead takes the head as one string when the reader already holds
// all of it, as it usually does (a reply head is one segment): one
// allocation for the status line and every header instead of one each.
func (rd *respReader) wholeHead() {
	buf, _ := rd.br.Peek(rd.br.Buffered())
	end := headEnd(buf)
	if end < 0 || end > rd.budget {
		return
	}
	rd.head, rd.whole = string(buf[:end]), true
	_, _ = rd.br.Discard(end)
}

// headEnd returns the length of the head at the start of buf, up to and
// including the blank line that ends it, or -1 if buf does not hold it.
func headEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(buf) && buf[i] == '\n':
			return i + 1
		case i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n':
			return i + 2
		}
	}
}

// headLine returns the next line of the head without its line end, from
// the head read whole if it was, else from the reader.
func (rd *respReader) headLine() (string, error) {
	if !rd.whole {
		return rd.line(&rd.budget, ErrHeadTooLarge)
	}
	i := strings.IndexByte(rd.head, '\n') // found: the head ends with a blank line
	l := rd.head[:i]
	rd.head = rd.head[i+1:]
	rd.budget -= i + 1
	if n := len(l); n > 0 && l[n-1] == '\r' {
		l = l[:n-1]
	} else {
		rd.lfOnly = true
	}
	if l == "" {
		rd.head, rd.whole = "", false // the end: anything after comes from the reader
	}
	return l, nil
}

func (rd *respReader) readHead(resp *Response) error {
	if err := rd.checkPrefix(); err != nil {
		return err
	}
	rd.wholeHead()
	status, err := rd.headLine()
	if err != nil {
		return err
	}
	if err := parseStatus(status, resp); err != nil {
		return err
	}
	for {
		l, err := rd.headLine()
		if err != nil {
			return err
		}
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			if n := len(resp.Header); n > 0 {
				resp.Header[n-1].Value += " " + strings.TrimSpace(l)
				continue
			}
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) == "" {
			resp.Notes = append(resp.Notes, fmt.Sprintf("ignored header line without a name: %.40q", l))
			continue
		}
		resp.Header = append(resp.Header, Field{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	if rd.lfOnly {
		resp.Notes = appendOnce(resp.Notes, "LF-only line ends")
	}
	return nil
}

func parseStatus(l string, resp *Response) error {
	proto, rest, _ := strings.Cut(l, " ")
	if len(proto) != len("HTTP/1.1") || !strings.EqualFold(proto[:5], "HTTP/") ||
		proto[5] < '0' || proto[5] > '9' || proto[6] != '.' || proto[7] < '0' || proto[7] > '9' {
		return fmt.Errorf("%w: bad status line %.60q", ErrMalformed, l)
	}
	rest = strings.TrimLeft(rest, " ")
	code, reason, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || n < 100 {
		return fmt.Errorf("%w: bad status code in %.60q", ErrMalformed, l)
	}
	resp.Proto, resp.Status, resp.Reason = strings.ToUpper(proto), n, strings.TrimSpace(reason)
	return nil
}

func (rd *respReader) readBody(resp *Response, head bool) error {
	te := strings.ToLower(resp.Get("Transfer-Encoding"))
	switch {
	case head || resp.Status == 101 || resp.Status == 204 || resp.Status == 304:
		resp.Framing = FramingNone
		return nil
	case te != "":
		codings := strings.Split(te, ",")
		if strings.TrimSpace(codings[len(codings)-1]) == "chunked" {
			resp.Framing = FramingChunked
			return rd.chunked(resp)
		}
		resp.Framing = FramingClose
		return rd.toClose(resp)
	}
	n, ok, err := contentLength(resp)
	if err != nil {
		return err
	}
	if !ok {
		resp.Framing = FramingClose
		return rd.toClose(resp)
	}
	resp.Framing = FramingContentLength
	if n > MaxBodyBytes {
		return fmt.Errorf("%w: content-length %d", ErrBodyTooLarge, n)
	}
	body, err := readFull(rd.br, rd.body[:0], int(n))
	resp.Body = body
	if err != nil {
		return fmt.Errorf("after %d of %d bytes: %w", len(body), n, err)
	}
	return nil
}

// readFull appends n bytes from r to buf. It grows buf as data arrives, so
// a Content-Length that promises more than is sent costs only what was.
// A close before n bytes is io.ErrUnexpectedEOF.
func readFull(r io.Reader, buf []byte, n int) ([]byte, error) {
	want := len(buf) + n
	for len(buf) < want {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(want-len(buf), max(512, cap(buf))))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), want)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(buf) == want {
					return buf, nil
				}
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

func contentLength(resp *Response) (n int64, ok bool, err error) {
	for _, f := range resp.Header {
		if !strings.EqualFold(f.Name, "Content-Length") {
			continue
		}
		// A list of equal values ("42, 42") is tolerated, different ones are not.
		for rest, more := f.Value, true; more; {
			var v string
			v, rest, more = strings.Cut(rest, ",")
			m, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if perr != nil || m < 0 {
				return 0, false, fmt.Errorf("%w: content-length %q", ErrMalformed, f.Value)
			}
			if ok && m != n {
				return 0, false, fmt.Errorf("%w: conflicting content-length %d and %d", ErrMalformed, n, m)
			}
			n, ok = m, true
		}
	}
	return n, ok, nil
}

// toClose reads the body until the server closes the connection.
func (rd *respReader) toClose(resp *Response) error {
	body := rd.body[:0]
	var err error
	for len(body) <= MaxBodyBytes {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(MaxBodyBytes+1-len(body), max(512, cap(body))))
		}
		var m int
		m, err = rd.br.Read(body[len(body):min(cap(body), MaxBodyBytes+1)])
		body = body[:len(body)+m]
		if err != nil {
			break
		}
	}
	n := len(body)
	resp.Body = body
	resp.closed = true
	if n > MaxBodyBytes {
		resp.Body = body[:MaxBodyBytes]
		return ErrBodyTooLarge
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err != nil {
		if isReset(err) {
			resp.Notes = append(resp.Notes, fmt.Sprintf("connection reset after %d body bytes, taken as the end of the body", n))
			return nil
		}
		return fmt.Errorf("after %d bytes (reading to close): %w", n, err)
	}
	return nil
}

func (rd *respReader) chunked(resp *Response) error {
	body := rd.body[:0]
	defer func() { resp.Body = body }()
	lineBudget := maxLineBytes
	for {
		lineBudget = maxLineBytes
		l, err := rd.line(&lineBudget, fmt.Errorf("%w: chunk size line too long", ErrMalformed))
		if err != nil {
			return fmt.Errorf("chunk size after %d bytes: %w", len(body), err)
		}
		sz, _, _ := strings.Cut(l, ";")
		size, perr := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
		if perr != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %.20q", ErrMalformed, l)
		}
		if size == 0 {
			break
		}
		if int64(len(body))+size > MaxBodyBytes {
			return ErrBodyTooLarge
		}
		start := len(body)
		if body, err = readFull(rd.br, body, int(size)); err != nil {
			return fmt.Errorf("chunk data after %d bytes: %w", start, err)
		}
		lineBudget = maxLineBytes
		if l, err := rd.line(&lineBudget, ErrMalformed); err != nil || l != "" {
			if err == nil {
				err = fmt.Errorf("%w: chunk not followed by a line end", ErrMalformed)
			}
			return err
		}
	}
	// Trailers, up to a blank line; a close right after the last chunk is tolerated.
	for {
		l, err := rd.line(&rd.budget, ErrHeadTooLarge)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			resp.closed = true
			resp.Notes = append(resp.Notes, "connection closed after the last chunk without its final line end")
			return nil
		}
		if err != nil {
			return fmt.Errorf("trailers: %w", err)
		}
		if l == "" {
			return nil
		}
	}
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
