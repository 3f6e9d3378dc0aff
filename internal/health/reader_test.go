package health

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// splitReader returns its input in the given pieces, one per Read.
type splitReader struct{ parts [][]byte }

func (s *splitReader) Read(p []byte) (int, error) {
	for len(s.parts) > 0 && len(s.parts[0]) == 0 {
		s.parts = s.parts[1:]
	}
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	return n, nil
}

func split(s string, at ...int) io.Reader {
	var parts [][]byte
	prev := 0
	for _, a := range at {
		parts = append(parts, []byte(s[prev:a]))
		prev = a
	}
	return &splitReader{parts: append(parts, []byte(s[prev:]))}
}

const coldFusionHead = "HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/4.0\r\nDate: Fri, 25 Aug 2000 12:32:07 GMT\r\n"
const coldFusionRest = "Content-Type: text/html\n\n<HTML>\r\n<HEAD>\r\n<B>COLDFUSION Successfully Running </B>\r\n</HEAD>\r\n<BODY>\r\n\r\n</BODY>\r\n</HTML>"

func TestReadResponse(t *testing.T) {
	cf := coldFusionHead + coldFusionRest
	tests := []struct {
		name    string
		in      io.Reader
		head    bool
		status  int
		body    string
		framing Framing
		wantErr error // nil: success
	}{
		{"split after CRLF (ColdFusion)", split(cf, len(coldFusionHead)), false, 200,
			coldFusionRest[len("Content-Type: text/html\n\n"):], FramingClose, nil},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader(cf)), false, 200,
			coldFusionRest[len("Content-Type: text/html\n\n"):], FramingClose, nil},
		{"HEAD ignores Content-Length", strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"), true, 200, "", FramingNone, nil},
		{"LF only", strings.NewReader("HTTP/1.0 200 OK\nContent-Length: 2\n\nok"), false, 200, "ok", FramingContentLength, nil},
		{"leading blank line", strings.NewReader("\r\nHTTP/1.1 204 No Content\r\n\r\n"), false, 204, "", FramingNone, nil},
		{"no reason phrase", strings.NewReader("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), false, 200, "", FramingContentLength, nil},
		{"chunked", split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", 50, 51, 60),
			false, 200, "hello world", FramingChunked, nil},
		{"chunked, close after last chunk", strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"),
			false, 200, "ok", FramingChunked, nil},
		{"100 continue then 200", strings.NewReader("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"), false, 200, "x", FramingContentLength, nil},
		{"folded header", strings.NewReader("HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"), false, 200, "", FramingContentLength, nil},
		{"garbage", strings.NewReader("SSH-2.0-OpenSSH_9.6\r\n"), false, 0, "", "", ErrNotHTTP},
		{"garbage first byte then silence", io.MultiReader(strings.NewReader("X"), iotest.TimeoutReader(strings.NewReader(""))), false, 0, "", "", ErrNotHTTP},
		{"bad status line", strings.NewReader("HTTP/1.1 OK\r\n\r\n"), false, 0, "", "", ErrMalformed},
		{"endless head", io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\n"), endless("X-A: aaaaaaaaaaaaaaaaaaaa\r\n")), false, 200, "", "", ErrHeadTooLarge},
		{"endless line", io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\nX: "), endless("a")), false, 200, "", "", ErrHeadTooLarge},
		{"endless body", io.MultiReader(strings.NewReader("HTTP/1.0 200 OK\r\n\r\n"), endless("body")), false, 200, "", FramingClose, ErrBodyTooLarge},
		{"huge content-length", strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"), false, 200, "", FramingContentLength, ErrBodyTooLarge},
		{"huge chunk", strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n"), false, 200, "", FramingChunked, ErrBodyTooLarge},
		{"conflicting content-length", strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx"), false, 200, "", "", ErrMalformed},
		{"short body", strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), false, 200, "abc", FramingContentLength, io.ErrUnexpectedEOF},
		{"empty", strings.NewReader(""), false, 0, "", "", io.EOF},
		{"closed mid head", strings.NewReader("HTTP/1.1 200 OK\r\nServ"), false, 200, "", "", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ReadResponse(tt.in, tt.head)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if resp.Status != tt.status {
				t.Errorf("got status %d, want %d", resp.Status, tt.status)
			}
			if tt.framing != "" && resp.Framing != tt.framing {
				t.Errorf("got framing %q, want %q", resp.Framing, tt.framing)
			}
			if tt.wantErr == nil && string(resp.Body) != tt.body {
				t.Errorf("got body %q, want %q", resp.Body, tt.body)
			}
			if len(resp.Body) > MaxBodyBytes {
				t.Errorf("kept %d body bytes, want at most %d", len(resp.Body), MaxBodyBytes)
			}
		})
	}
}

func TestReadResponseLFOnlyNoted(t *testing.T) {
	resp, err := ReadResponse(strings.NewReader("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(resp.Notes, ";"), "LF-only") {
		t.Errorf("got notes %q, want one about LF-only line ends", resp.Notes)
	}
}

// endless repeats s forever.
func endless(s string) io.Reader { return &repeater{s: []byte(s)} }

type repeater struct {
	s []byte
	i int
}

func (r *repeater) Read(p []byte) (int, error) {
	for n := range p {
		p[n] = r.s[r.i%len(r.s)]
		r.i++
	}
	return len(p), nil
}

// FuzzReadResponse checks that the reader never panics, stays within its
// limits, and gives the same answer however the input is split.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		coldFusionHead + coldFusionRest,
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.0 302 Found\nLocation: /x\n\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nno colon\r\n\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: 1\n\r\n",
		"garbage",
	} {
		f.Add([]byte(s), false, uint16(7))
		f.Add([]byte(s), true, uint16(1))
	}
	f.Fuzz(func(t *testing.T, in []byte, head bool, at uint16) {
		whole, errWhole := ReadResponse(bytes.NewReader(in), head)
		cut := int(at) % (len(in) + 1)
		parts, errParts := ReadResponse(split(string(in), cut), head)
		bytewise, errBytes := ReadResponse(iotest.OneByteReader(bytes.NewReader(in)), head)
		for _, r := range []*Response{whole, parts, bytewise} {
			if len(r.Body) > MaxBodyBytes {
				t.Fatalf("kept %d body bytes", len(r.Body))
			}
		}
		if (errWhole == nil) != (errParts == nil) || (errWhole == nil) != (errBytes == nil) {
			t.Fatalf("errors differ by split: whole %v, split at %d %v, bytewise %v", errWhole, cut, errParts, errBytes)
		}
		if errWhole == nil {
			for _, r := range []*Response{parts, bytewise} {
				if r.Status != whole.Status || !bytes.Equal(r.Body, whole.Body) || r.Framing != whole.Framing {
					t.Fatalf("split changed the result: %d %q %s vs %d %q %s", r.Status, r.Body, r.Framing, whole.Status, whole.Body, whole.Framing)
				}
				// A head read whole and one read line by line parse alike.
				if r.Proto != whole.Proto || r.Reason != whole.Reason || !slices.Equal(r.Header, whole.Header) || !slices.Equal(r.Notes, whole.Notes) {
					t.Fatalf("split changed the head: %q %q %q %q vs %q %q %q %q", r.Proto, r.Reason, r.Header, r.Notes, whole.Proto, whole.Reason, whole.Header, whole.Notes)
				}
			}
		}
	})
}
