package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"time"
)

// maxScriptBytes bounds what a script keeps of the conversation for its
// expect and reject regexes.
const maxScriptBytes = 64 << 10

var builtinScripts = map[string][]Step{
	// A multi-line greeting ends with "220 " (space); HELO gets one line.
	"smtp": {
		{Expect: regexp.MustCompile(`(?m)^220 `)},
		{Send: "HELO fulcrum\r\n"},
		{Expect: regexp.MustCompile(`(?m)^250[ -]`)},
		{Send: "QUIT\r\n"},
	},
	"pop3": {
		{Expect: regexp.MustCompile(`^\+OK`)},
		{Send: "QUIT\r\n"},
	},
	"imap": {
		{Expect: regexp.MustCompile(`^\* (OK|PREAUTH)`)},
		{Send: "a1 LOGOUT\r\n"},
	},
	"ftp": {
		{Expect: regexp.MustCompile(`(?m)^220 `)},
		{Send: "QUIT\r\n"},
	},
	"redis": {
		{Send: "PING\r\n"},
		{Expect: regexp.MustCompile(`(?m)^(\+PONG|-)`)},
		{Reject: regexp.MustCompile(`(?m)^-`)},
	},
	"http-head": {
		{Send: "HEAD / HTTP/1.0\r\nUser-Agent: fulcrum-keepalive\r\n\r\n"},
		{Expect: regexp.MustCompile(`^HTTP/1\.[01] 200`)},
	},
}

// BuiltinScript returns a copy of the named built-in script.
func BuiltinScript(name string) ([]Step, bool) {
	s, ok := builtinScripts[name]
	return slices.Clone(s), ok
}

// ScriptNames lists the built-in scripts, sorted.
func ScriptNames() []string {
	names := make([]string, 0, len(builtinScripts))
	for n := range builtinScripts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// scriptConn is the conversation state of one script run. Reads go
// through the recorder (or, after a tls step, a recorder over the TLS
// connection), so the evidence is always plaintext.
type scriptConn struct {
	rw    io.ReadWriter
	raw   net.Conn
	all   []byte // everything received, up to maxScriptBytes
	since int    // start of what arrived since the previous step
	buf   []byte
}

func runScript(ctx context.Context, rec *recorder, address string, o Options, res *Result) {
	sc := &scriptConn{rw: rec, raw: rec.Conn, buf: make([]byte, 4096)}
	for i, st := range o.Script {
		step := fmt.Sprintf("step %d", i+1)
		switch {
		case st.Send != "":
			if _, err := sc.rw.Write([]byte(st.Send)); err != nil {
				res.Reason = fmt.Sprintf("%s: %s", step, describe(err, o.Timeout, "sending"))
				return
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s: sent %q", step, st.Send))
		case st.Expect != nil:
			if reason := sc.expect(st.Expect, o.Timeout); reason != "" {
				res.Reason = fmt.Sprintf("%s: %s", step, reason)
				return
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s: matched /%s/", step, st.Expect))
		case st.Reject != nil:
			if m := st.Reject.Find(sc.all); m != nil {
				res.Reason = fmt.Sprintf("%s: received text matched reject /%s/: %.60q", step, st.Reject, m)
				return
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s: /%s/ not seen", step, st.Reject))
		case st.TLS:
			if err := sc.startTLS(ctx, rec, address, o); err != nil {
				res.Reason = fmt.Sprintf("%s: %s", step, describe(err, o.Timeout, "in TLS handshake"))
				return
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s: TLS handshake done", step))
		}
		sc.since = len(sc.all)
	}
	res.OK = true
	res.Reason = fmt.Sprintf("script passed (%d steps)", len(o.Script))
}

// expect reads until re matches what arrived since the previous step, the
// server closes, or the check's deadline passes. It returns "" on a match.
func (sc *scriptConn) expect(re *regexp.Regexp, timeout time.Duration) string {
	for {
		if re.Match(sc.all[sc.since:]) {
			return ""
		}
		if len(sc.all) >= maxScriptBytes {
			return fmt.Sprintf("no match for /%s/ in the first %d KiB received", re, maxScriptBytes>>10)
		}
		n, err := sc.rw.Read(sc.buf)
		sc.all = append(sc.all, sc.buf[:min(n, maxScriptBytes-len(sc.all))]...)
		if err != nil {
			if re.Match(sc.all[sc.since:]) {
				return ""
			}
			return fmt.Sprintf("%s (got %.60q)", describe(err, timeout, fmt.Sprintf("waiting for /%s/", re)), sc.all[sc.since:])
		}
	}
}

// startTLS switches the conversation to TLS. The keepalive proves the
// service answers; it does not authenticate the server, so certificates
// are not verified (backends often use internal certificates).
func (sc *scriptConn) startTLS(ctx context.Context, rec *recorder, address string, o Options) error {
	host := o.Host
	if host == "" {
		host, _, _ = net.SplitHostPort(address)
	}
	tc := tls.Client(sc.raw, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // liveness only, see doc
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	// Keep recording: point the recorder at the TLS connection.
	rec.Conn = tc
	sc.rw = rec
	return nil
}
