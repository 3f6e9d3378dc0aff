package health

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ParseTarget turns the argument of `fulcrum probe` into an address and
// options: "http://host[:port]/path" is an HTTP check (HEAD, Host header
// from the URL), "host:port" a TCP check. The caller overlays flags
// (method, script, expect), then calls WithDefaults and Validate.
func ParseTarget(arg string) (address string, o Options, err error) {
	if !strings.Contains(arg, "://") {
		if _, _, err := net.SplitHostPort(arg); err != nil {
			return "", o, fmt.Errorf("parsing probe target %q: want URL or host:port: %w", arg, err)
		}
		return arg, Options{Type: TypeTCP}, nil
	}
	u, err := url.Parse(arg)
	if err != nil {
		return "", o, fmt.Errorf("parsing probe target: %w", err)
	}
	if u.Scheme != "http" {
		return "", o, fmt.Errorf("parsing probe target %q: scheme %q not supported (http only)", arg, u.Scheme)
	}
	address = u.Host
	if u.Port() == "" {
		address = net.JoinHostPort(u.Hostname(), "80")
	}
	o = Options{Type: TypeHTTP, Host: u.Host, Path: u.RequestURI()}
	return address, o, nil
}

// WriteTranscript renders one check for a person: what was sent, what came
// back segment by segment with offsets and timings, and the verdict with
// its reason.
func WriteTranscript(w io.Writer, address string, o Options, r Result) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "probe %s %s at %s (timeout %s)\n", o.Type, describeCheck(o), address, o.Timeout)
	fmt.Fprintf(&b, "started %s, took %s\n", r.At.Format(time.RFC3339Nano), r.Duration.Round(time.Microsecond))
	if c := r.Conn.String(); c != "" {
		fmt.Fprintf(&b, "on a %s\n", c)
	}
	n := 0
	for _, s := range r.Segments {
		if s.Dir == DirRetry {
			fmt.Fprintf(&b, "= the reused connection was closed by the server; retry on a new connection, +%s\n", ms(s.At))
			continue
		}
		n++
		data, arrow := r.Received, "<"
		what := "received"
		if s.Dir == DirSent {
			data, arrow, what = r.Sent, ">", "sent"
		}
		fmt.Fprintf(&b, "%s segment %d: %s %d bytes at offset %d, +%s\n", arrow, n, what, s.Len, s.Offset, ms(s.At))
		end := min(s.Offset+s.Len, len(data))
		if s.Offset < end {
			writeQuoted(&b, arrow, data[s.Offset:end])
		}
		if end < s.Offset+s.Len {
			fmt.Fprintf(&b, "%s   ... (%d more bytes not kept)\n", arrow, s.Offset+s.Len-max(end, s.Offset))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if r.Hash != "" {
		fmt.Fprintf(&b, "hash: sha256:%s\n", r.Hash)
	}
	verdict := "FAIL"
	if r.OK {
		verdict = "PASS"
	}
	fmt.Fprintf(&b, "verdict: %s: %s\n", verdict, r.Reason)
	_, err := w.Write(b.Bytes())
	return err
}

func describeCheck(o Options) string {
	switch o.Type {
	case TypeHTTP:
		s := o.Method + " " + o.Path
		if o.Host != "" {
			s += " (Host: " + o.Host + ")"
		}
		return s
	case TypeScript:
		if o.ScriptName != "" {
			return o.ScriptName
		}
		return strconv.Itoa(len(o.Script)) + " steps"
	}
	return "connect"
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
}

// writeQuoted writes p one line per output line, line ends and other
// control bytes made visible, so a split right after "\r\n" shows.
func writeQuoted(b *bytes.Buffer, arrow string, p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		line := p
		if i >= 0 {
			line, p = p[:i+1], p[i+1:]
		} else {
			p = nil
		}
		q := strconv.Quote(string(line))
		fmt.Fprintf(b, "%s   %s\n", arrow, q[1:len(q)-1])
	}
}
