// Package config reads fulcrum's YAML configuration: schema, defaults and
// validation.
//
// Parse works in three passes over a yaml.Node tree, so that every mistake
// carries the file, line, column and field path it is about:
//
//  1. decode: unknown keys, duplicate keys and wrong types are mistakes;
//  2. defaults: every field left out gets its documented default;
//  3. validate: ranges, enums, cross references (routes to pools), unique
//     names, regular expressions and TLS key pairs.
//
// All mistakes are collected and returned together as Errors, sorted by line
// and column; a Config is returned only when there are none. A returned Config
// is complete: regular expressions are compiled and TLS key pairs loaded, so
// callers never parse a string from it again.
package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole fulcrum configuration.
type Config struct {
	// File is the name the configuration was loaded from, as given to Load or
	// Parse.
	File string
	// Admin is the admin API listener (key admin).
	Admin Admin
	// Log configures logging (key log).
	Log Log
	// ShutdownTimeout is how long a graceful shutdown waits for in-flight
	// requests and tunnels before closing them (key shutdown_timeout,
	// default 30s).
	ShutdownTimeout time.Duration
	// DataDir is where fulcrum keeps state across restarts: persistence
	// table snapshots (key data_dir, default "fulcrum-data" beside the
	// configuration file; created when missing). A relative path is
	// resolved against the configuration file's directory.
	DataDir string
	// Keyring is the machine key ring file (key keyring, optional; required
	// by persistence mode cookie; the file must exist). A relative path is
	// resolved against the configuration file's directory.
	Keyring string
	// Listeners accept client traffic (key listeners, required, at least one).
	Listeners []Listener
	// Pools are groups of servers that listeners forward to (key pools,
	// required, at least one). A pool no listener uses is allowed.
	Pools []Pool
	// State is the session state service (key state, see state.go).
	State *State
	// Cluster replicates persistence tables between nodes (key cluster, see
	// cluster.go).
	Cluster *Cluster
}

// Pool returns the pool called name, or nil.
func (c *Config) Pool(name string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// Admin configures the admin API.
type Admin struct {
	// Listen is the admin API's address, host:port (key listen, default
	// 127.0.0.1:9090).
	Listen string
	// TokenFile is a file holding the bearer token the admin API requires
	// (key token_file, optional; the file must exist). A relative path is
	// resolved against the configuration file's directory.
	TokenFile string
	// Hosts are the DNS names the admin API and dashboard may be reached by
	// besides IP addresses, localhost and the machine's own name (key hosts);
	// any other Host header is refused, against DNS rebinding.
	Hosts []string
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error (key level, default info).
	Level string
	// Format is text or json (key format, default text).
	Format string
	// Access turns on one log line per request or TCP connection (key
	// access, default true).
	Access bool
}

// Listener accepts client connections on one address.
type Listener struct {
	// Name identifies the listener in logs and metrics (key name, required,
	// unique; letters, digits, '.', '_' and '-').
	Name string
	// Listen is host:port; ":8080" listens on every address (key listen,
	// required, unique across listeners and admin.listen).
	Listen string
	// Protocol is http, https or tcp (key protocol, required).
	Protocol string
	// TLS holds the certificates of an https listener (key tls: one
	// {cert, key} mapping or a list of them; required for https, not allowed
	// otherwise).
	TLS []TLSCert
	// Routes pick a pool for each http or https request; the first match
	// wins (key routes). After Parse an http or https listener always has at
	// least one route: a listener written with pool instead of routes gets a
	// single default route to that pool. tcp listeners have none.
	Routes []Route
	// Pool is the pool a tcp listener forwards to (key pool, required for
	// tcp). On an http or https listener it is shorthand for one default
	// route, and may not be combined with routes.
	Pool string
	// Timeouts bound how long clients may take (key timeouts).
	// AcceptProxy reads a PROXY protocol v1/v2 header first (only from
	// TrustedProxies); default false.
	AcceptProxy bool
	// TrustedProxies (addresses or CIDR prefixes) may send PROXY headers
	// and forwarding headers fulcrum believes; default none.
	TrustedProxies  []string
	TrustedPrefixes []netip.Prefix `json:"-"`
	// Access rules apply to every request of the listener, before routing
	// (key access; see AccessRule).
	Access []AccessRule
	// RateLimit bounds each client's requests and connections (key
	// rate_limit; see RateLimit).
	RateLimit *RateLimit
	Timeouts  ListenerTimeouts
	// Limits bound what clients may send (key limits).
	Limits ListenerLimits
}

// TLSCert is one certificate and its private key.
type TLSCert struct {
	// Cert is a PEM certificate chain file (key cert, required). A relative
	// path is resolved against the configuration file's directory.
	Cert string
	// Key is the PEM private key file (key key, required). A relative path is
	// resolved against the configuration file's directory.
	Key string
	// Certificate is the pair loaded from Cert and Key. It is never
	// serialized, so dumping a Config cannot leak the private key.
	Certificate *tls.Certificate `json:"-"`
}

// ListenerTimeouts bound how long a client may take.
type ListenerTimeouts struct {
	// ClientHeader is the time to receive a full request head (key
	// client_header, default 10s).
	ClientHeader time.Duration
	// ClientIdle is how long a keep-alive connection may sit idle between
	// requests (key client_idle, default 60s).
	ClientIdle time.Duration
	// ClientBody is the longest gap between two reads of a request body (key
	// client_body, default 60s).
	ClientBody time.Duration
	// TunnelIdle is how long a WebSocket or TCP connection may carry no data
	// in either direction (key tunnel_idle, default 1h).
	TunnelIdle time.Duration
}

// ListenerLimits bound what a client may send. Sizes are in bytes.
type ListenerLimits struct {
	// MaxHeaderBytes is the largest request head accepted (key
	// max_header_bytes, default 32KiB, must be positive).
	MaxHeaderBytes int64
	// MaxBody is the largest request body accepted; 0 means unlimited (key
	// max_body, default 0).
	MaxBody int64
	// MaxConns is the most client connections open at once; 0 means
	// unlimited (key max_conns, default 10000).
	MaxConns int
}

// Route sends matching requests to a pool. Every match field that is set must
// match; a route with no match fields matches every request (the default
// route) and must be the listener's last.
type Route struct {
	// Host matches the request host, exactly or, written "*.example.com",
	// any subdomain of example.com (not example.com itself). Matching is
	// case-insensitive; Parse stores Host in lower case (key host).
	Host string
	// PathPrefix matches request paths starting with it (key path_prefix,
	// must start with "/"; not with path).
	PathPrefix string
	// Path matches the request path exactly (key path, must start with "/";
	// not with path_prefix).
	Path string
	// Header matches a request header (key header).
	Header *HeaderMatch
	// Pool is the pool matching requests go to (key pool, required, must be
	// defined).
	Pool string
	// CORS is the route's cross-origin policy (key cors), answered by
	// fulcrum; nil: requests and responses pass as they are.
	CORS *CORS
	// Access rules apply to the route's requests after the listener's
	// (key access; see AccessRule).
	Access []AccessRule
	// RateLimit bounds each client's requests on this route, besides the
	// listener's (key rate_limit).
	RateLimit *RateLimit
}

// HeaderMatch matches a request header.
type HeaderMatch struct {
	// Name is the header name, an HTTP token (key name, required; matched
	// case-insensitively as HTTP requires).
	Name string
	// Value is compared exactly with the header's value; empty means the
	// header only has to be present (key value).
	Value string
}

// Pool is a group of servers and how to share traffic among them.
type Pool struct {
	// Name identifies the pool (key name, required, unique; letters, digits,
	// '.', '_' and '-').
	Name string
	// Balance is round_robin, weighted, least_conn, source_hash, uri_hash,
	// header_hash or p2c (key balance, default round_robin).
	Balance string
	// HashHeader is the header hashed by balance header_hash (key
	// hash_header, required with header_hash and not allowed otherwise).
	HashHeader string
	// Servers are the pool's members (key servers, required, at least one).
	Servers []Server
	// Keepalive is the active health check (key keepalive; a pool without
	// one gets type tcp with every default).
	Keepalive Keepalive
	// Timeouts bound upstream connections (key timeouts).
	Timeouts PoolTimeouts
	// Retries is how many other servers a failed request may be retried on
	// (key retries, default 2, 0..10).
	Retries int
	// ClientIP is how servers learn the client's address (key client_ip):
	// forwarded (default: X-Forwarded-For, -Proto, -Host, Forwarded), none,
	// proxy_v1, proxy_v2 (a PROXY header on every server connection) or
	// transparent (connect from the client's own address).
	ClientIP string
	// MaxIdle is how many idle upstream connections are kept per server
	// (key max_idle, default 512, 0 keeps none).
	MaxIdle int
	// Persistence keeps clients on their session's server (key
	// persistence; see persist.go).
	Persistence Persistence
}

// PoolTimeouts bound upstream connections.
type PoolTimeouts struct {
	// Connect is the time to establish an upstream connection (key connect,
	// default 3s).
	Connect time.Duration
	// Response is the time from the request being sent to the response head
	// arriving (key response, default 60s).
	Response time.Duration
	// Idle is how long an idle upstream connection is kept for reuse (key
	// idle, default 90s).
	Idle time.Duration
}

// Server is one member of a pool.
type Server struct {
	// Name identifies the server within its pool (key name, required,
	// unique in the pool; letters, digits, '.', '_' and '-').
	Name string
	// Address is host:port where host is an IPv4 address, an IPv6 address in
	// brackets ("[::1]:9001") or a hostname, and port is 1..65535 (key
	// address, required).
	Address string
	// Weight is the server's share for weighted balancing (key weight,
	// default 1, 1..1000).
	Weight int
	// MaxConns is the most requests or connections in flight to this server;
	// 0 means unlimited (key max_conns, default 0).
	MaxConns int
	// MaxQueue is how many requests may wait for a free slot when MaxConns
	// is reached (key max_queue, default 100 when max_conns is set, else 0;
	// only allowed with max_conns).
	MaxQueue int
}

// Keepalive is a pool's active health check.
type Keepalive struct {
	// Type is none, tcp (connect only), http or script (key type, default
	// tcp).
	Type string
	// Method is HEAD or GET (key method, type http only, default HEAD).
	Method string
	// Path is the request path (key path, type http only, default "/").
	Path string
	// Host is the Host header sent; empty means the server's address (key
	// host, type http only).
	Host string
	// ExpectStatus lists the status codes that count as healthy, 100..599
	// (key expect_status, a code or a list, type http only, default [200]).
	ExpectStatus []int
	// Hash turns on content hashing of the response body; a server whose
	// hash changes is taken out (key hash, type http with method GET only,
	// default false).
	Hash bool
	// HashFleet compares the hash across all servers of the pool instead of
	// with each server's previous one (key hash_fleet, requires hash,
	// default false).
	HashFleet bool
	// HashMask lists regular expressions whose matches are removed from the
	// body before hashing, e.g. timestamps (key hash_mask, requires hash).
	HashMask []string
	// HashMaskRe are HashMask compiled, index for index.
	HashMaskRe []*regexp.Regexp
	// BodyMatch is a regular expression the body must match (key
	// body_match, type http with method GET only).
	BodyMatch string
	// BodyMatchRe is BodyMatch compiled; nil when BodyMatch is empty.
	BodyMatchRe *regexp.Regexp
	// BodyReject is a regular expression the body must not match (key
	// body_reject, type http with method GET only).
	BodyReject string
	// BodyRejectRe is BodyReject compiled; nil when BodyReject is empty.
	BodyRejectRe *regexp.Regexp
	// Interval is the time between checks of a healthy server (key interval,
	// default 5s).
	Interval time.Duration
	// DownInterval is the time between checks of a server that is down (key
	// down_interval, default: Interval).
	DownInterval time.Duration
	// Timeout bounds one check (key timeout, default 2s, at most Interval).
	Timeout time.Duration
	// Rise is how many passes in a row bring a down server up (key rise,
	// default 2, at least 1).
	Rise int
	// Fall is how many failures in a row take a server down (key fall,
	// default 3, at least 1).
	Fall int
	// SendProxy sends a PROXY protocol v2 header before the check (key
	// send_proxy, default false); once per connection when connections are
	// reused.
	SendProxy bool
	// Reuse keeps the connection of a passing check open for the next one,
	// HTTP/1.1 keep-alive (key reuse, type http only, default true): a
	// check then costs a write and a read instead of a connect, a request
	// and a close. false opens a new connection for every check.
	Reuse bool
	// ReuseMax is the most checks one connection carries before a new one
	// is opened, so a server whose accept path died while an old
	// connection still answers is found within reuse_max intervals (key
	// reuse_max, 1..1000, default 10, only with reuse: true).
	ReuseMax int
	// Passive takes servers down on failures seen in live traffic (key
	// passive; nil when not configured). Allowed with every type, none too.
	Passive *Passive
	// Script is the conversation of a script check written as steps (key
	// script given as a list, type script only).
	Script []ScriptStep
	// ScriptName is a built-in conversation: smtp, pop3, imap, ftp, redis or
	// http-head (key script given as a string, type script only).
	ScriptName string
}

// Passive is health checking on live traffic.
type Passive struct {
	// Fall is how many failed requests or connections within Within take a
	// server down (key fall, default 5, at least 1).
	Fall int
	// Within is the window failures are counted in (key within, default 10s).
	Within time.Duration
}

// ScriptStep is one step of a script check. Exactly one of Send, Expect,
// Reject and TLS is set.
type ScriptStep struct {
	// Send is written to the server as is (key send, not empty).
	Send string
	// Expect is a regular expression the next line read must match (key
	// expect).
	Expect string
	// ExpectRe is Expect compiled; nil unless this is an expect step.
	ExpectRe *regexp.Regexp
	// Reject is a regular expression the next line read must not match (key
	// reject).
	Reject string
	// RejectRe is Reject compiled; nil unless this is a reject step.
	RejectRe *regexp.Regexp
	// TLS starts TLS on the connection (key tls, must be true).
	TLS bool
}

// Load reads and parses the configuration file at path. A file that cannot be
// read yields a plain error; a file with mistakes yields Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a configuration; name is used in messages and its directory
// resolves relative file names (TLS files, admin.token_file). On failure the
// error is Errors holding every mistake found.
func Parse(name string, data []byte) (*Config, error) {
	b := newBook(name)
	root := readYAML(b, data)
	if root == nil {
		return nil, b.result()
	}
	d := &decoder{book: b}
	c := d.config(root)
	if d.tooLarge() {
		// Only this mistake: the rest of the tree was never looked at.
		b.errs = nil
		b.errAt(span{}, "", "configuration too large: more than %d YAML nodes after expanding aliases", maxNodes)
		return nil, b.result()
	}
	c.File = name
	applyDefaults(c, b)
	validate(c, b)
	if err := b.result(); err != nil {
		return nil, err
	}
	return c, nil
}

// readYAML parses data into the root node of its single document, recording
// syntax mistakes in b. It returns nil when there is nothing to decode.
func readYAML(b *book, data []byte) (root *yaml.Node) {
	// yaml.v3 reports syntax errors by panicking internally and recovering;
	// guard against any panic that escapes it so bad input is only ever an
	// error, never a crash.
	defer func() {
		if r := recover(); r != nil {
			b.errAt(span{}, "", "cannot parse YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			b.errAt(span{}, "", "configuration is empty")
		} else {
			syntaxError(b, err)
		}
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		b.errAt(span{}, "", "configuration is empty")
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		b.errAt(span{next.Line, next.Column}, "", "only one YAML document is allowed")
		return nil
	case !errors.Is(err, io.EOF):
		syntaxError(b, err)
		return nil
	}
	return doc.Content[0]
}

// syntaxError records a yaml.v3 syntax error. yaml.v3 has no typed syntax
// error: the line is only available inside the message ("yaml: line 3: ..."),
// so it is taken from there.
func syntaxError(b *book, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil && n > 0 {
				line, msg = n, tail
			}
		}
	}
	b.errAt(span{line: line}, "", "invalid YAML: %s", msg)
}
