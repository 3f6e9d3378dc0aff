package health

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Type selects the kind of keepalive.
type Type string

// Keepalive types, as written in the config (`keepalive.type`).
const (
	TypeNone   Type = "none"   // no checks; the server is always up
	TypeTCP    Type = "tcp"    // a TCP connect must succeed
	TypeHTTP   Type = "http"   // an HTTP/1.x request must get an acceptable reply
	TypeScript Type = "script" // send/expect steps over one TCP connection
)

// Defaults applied by WithDefaults; each matches the documented config default.
const (
	DefaultType         = TypeTCP
	DefaultMethod       = "HEAD"
	DefaultPath         = "/"
	DefaultInterval     = 5 * time.Second
	DefaultDownInterval = 2 * time.Second
	DefaultTimeout      = 2 * time.Second
	DefaultRise         = 2
	DefaultFall         = 3
	DefaultPassiveFall  = 5
	DefaultWithin       = 10 * time.Second
	DefaultReuseMax     = 10
	MaxReuseMax         = 1000
)

// Options is one pool's keepalive, already parsed and validated by the
// config package. The zero value of every field means "use the default";
// call WithDefaults, then Validate.
type Options struct {
	// Type is none, tcp (default), http or script.
	Type Type
	// Method is HEAD (default) or GET; http only.
	Method string
	// Path is the request target; default "/".
	Path string
	// Host is the Host header; default: the server's address.
	Host string
	// ExpectStatus lists the statuses that count as alive; default [200].
	ExpectStatus []int
	// Hash learns the body's SHA-256 on the first good reply; a later
	// different hash fails the check. GET only.
	Hash bool
	// HashFleet compares a server's hash with the other servers of its pool:
	// when they all move together (a deploy) the new hash is adopted and
	// reported as hash_changed; a server that differs from the majority fails.
	HashFleet bool
	// HashMask regexes are removed from the body before hashing
	// (timestamps, tokens).
	HashMask []*regexp.Regexp
	// BodyMatch must match the body for the check to pass.
	BodyMatch *regexp.Regexp
	// BodyReject fails the check when it matches the body.
	BodyReject *regexp.Regexp
	// Interval is the time between checks while up or dying; default 5s.
	Interval time.Duration
	// DownInterval is the time between checks while down; default 2s.
	DownInterval time.Duration
	// Timeout bounds one whole check (connect, send, receive); default 2s.
	Timeout time.Duration
	// Rise is how many consecutive passes bring a down server up; default 2.
	Rise int
	// Fall is how many consecutive failures take a server down; default 3.
	// In between the server is dying (still gets traffic).
	Fall int
	// SendProxy sends a PROXY protocol v2 header right after connecting
	// (once per connection when connections are reused).
	SendProxy bool
	// ReuseMax is the most http checks one connection serves, 1..MaxReuseMax;
	// default DefaultReuseMax. 1 opens a new connection for every check
	// (reuse: false in the config). Above 1, a Checker keeps the
	// connection of a passing check for the next one (HTTP/1.1 keep-alive)
	// and opens a new one at least every ReuseMax checks, so a server whose
	// accept path died while an old connection still answers is found
	// within ReuseMax intervals (see README.md, "Connection reuse"). A
	// checker's first connection serves a random 1..ReuseMax checks, so
	// servers started together do not all reconnect in the same second.
	// http only; Probe always uses one new connection.
	ReuseMax int
	// Script is the user's steps (type script).
	Script []Step
	// ScriptName names a built-in script (smtp, pop3, imap, ftp, redis,
	// http-head); WithDefaults resolves it into Script when Script is empty.
	ScriptName string
	// Passive counts failures seen on live traffic.
	Passive Passive
}

// Step is one step of a script keepalive. Exactly one field is set.
type Step struct {
	// Send writes these bytes as they are.
	Send string
	// Expect waits (up to the check's timeout) until it matches what has
	// arrived since the previous step.
	Expect *regexp.Regexp
	// Reject fails the check if it matches anything received so far.
	Reject *regexp.Regexp
	// TLS starts a TLS client handshake on the connection.
	TLS bool
}

// Passive marks a server down when live traffic fails Fall times within
// Within (connect failures, 5xx replies, as reported by the proxies).
// Fall 0 disables passive health.
type Passive struct {
	Fall   int
	Within time.Duration
}

// WithDefaults returns o with every zero field set to its default and a
// built-in ScriptName resolved into Script.
func (o Options) WithDefaults() Options {
	if o.Type == "" {
		o.Type = DefaultType
	}
	o.Method = strings.ToUpper(o.Method)
	if o.Method == "" {
		o.Method = DefaultMethod
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if len(o.ExpectStatus) == 0 {
		o.ExpectStatus = []int{200}
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.DownInterval == 0 {
		o.DownInterval = DefaultDownInterval
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Rise == 0 {
		o.Rise = DefaultRise
	}
	if o.Fall == 0 {
		o.Fall = DefaultFall
	}
	if o.ReuseMax == 0 {
		o.ReuseMax = DefaultReuseMax
	}
	if o.Passive.Fall > 0 && o.Passive.Within == 0 {
		o.Passive.Within = DefaultWithin
	}
	if len(o.Script) == 0 && o.ScriptName != "" {
		if s, ok := BuiltinScript(o.ScriptName); ok {
			o.Script = s
		}
	}
	return o
}

// Validate reports every invalid field of o (after WithDefaults), joined.
func (o Options) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("keepalive.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch o.Type {
	case TypeNone, TypeTCP, TypeHTTP, TypeScript:
	default:
		bad("type", "%q is not one of none, tcp, http, script", o.Type)
	}
	if o.Method != "HEAD" && o.Method != "GET" {
		bad("method", "%q is not HEAD or GET", o.Method)
	}
	if !strings.HasPrefix(o.Path, "/") {
		bad("path", "%q must start with /", o.Path)
	}
	for _, s := range o.ExpectStatus {
		if s < 100 || s > 999 {
			bad("expect_status", "%d is not an HTTP status", s)
		}
	}
	if o.Hash && o.Method != "GET" {
		bad("hash", "needs method GET (a HEAD reply has no body)")
	}
	if o.HashFleet && !o.Hash {
		bad("hash_fleet", "needs hash: true")
	}
	if o.Interval <= 0 || o.DownInterval <= 0 || o.Timeout <= 0 {
		bad("interval", "interval, down_interval and timeout must be positive")
	}
	if o.Rise < 1 || o.Fall < 1 {
		bad("rise", "rise and fall must be at least 1")
	}
	if o.ReuseMax < 1 || o.ReuseMax > MaxReuseMax {
		bad("reuse_max", "%d is not 1..%d", o.ReuseMax, MaxReuseMax)
	}
	if o.Passive.Fall < 0 || (o.Passive.Fall > 0 && o.Passive.Within <= 0) {
		bad("passive", "fall must be >= 0 and within positive")
	}
	if o.Passive.Fall > 0 && o.Type == TypeNone {
		bad("passive", "needs an active keepalive (tcp, http or script) to bring a server back up")
	}
	if o.Type == TypeScript {
		if len(o.Script) == 0 {
			if o.ScriptName != "" {
				bad("script", "%q is not a built-in script (%s)", o.ScriptName, strings.Join(ScriptNames(), ", "))
			} else {
				bad("script", "a script keepalive needs steps or a built-in name")
			}
		}
		for i, s := range o.Script {
			if s.count() != 1 {
				bad(fmt.Sprintf("script[%d]", i), "set exactly one of send, expect, reject, tls")
			}
		}
	}
	return errors.Join(errs...)
}

func (s Step) count() int {
	n := 0
	for _, set := range []bool{s.Send != "", s.Expect != nil, s.Reject != nil, s.TLS} {
		if set {
			n++
		}
	}
	return n
}

// fingerprint is a canonical text of o, so two Options compare equal when
// they configure the same check (regexps compare by source).
func (o Options) fingerprint() string {
	var b strings.Builder
	re := func(r *regexp.Regexp) string {
		if r == nil {
			return "-"
		}
		return r.String()
	}
	fmt.Fprintf(&b, "%s|%s|%s|%s|%v|%t|%t|", o.Type, o.Method, o.Path, o.Host, o.ExpectStatus, o.Hash, o.HashFleet)
	for _, m := range o.HashMask {
		fmt.Fprintf(&b, "%q,", re(m))
	}
	fmt.Fprintf(&b, "|%q|%q|%v|%v|%v|%d|%d|%t|%v|%d|", re(o.BodyMatch), re(o.BodyReject),
		o.Interval, o.DownInterval, o.Timeout, o.Rise, o.Fall, o.SendProxy, o.Passive, o.ReuseMax)
	for _, s := range o.Script {
		fmt.Fprintf(&b, "%q/%q/%q/%t;", s.Send, re(s.Expect), re(s.Reject), s.TLS)
	}
	return b.String()
}

func (o Options) expects(status int) bool { return slices.Contains(o.ExpectStatus, status) }

// reuses says whether a Checker keeps connections between checks.
func (o Options) reuses() bool { return o.Type == TypeHTTP && o.ReuseMax > 1 }
