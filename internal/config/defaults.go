package config

import "time"

// Defaults. The README's table lists the same values; keep them in step.
const (
	defaultAdminListen     = "127.0.0.1:9090"
	defaultLogLevel        = "info"
	defaultLogFormat       = "text"
	defaultLogAccess       = true
	defaultShutdownTimeout = 30 * time.Second

	defaultClientHeader   = 10 * time.Second
	defaultClientIdle     = 60 * time.Second
	defaultClientBody     = 60 * time.Second
	defaultTunnelIdle     = time.Hour
	defaultMaxHeaderBytes = 32 << 10
	defaultMaxBody        = 0 // unlimited
	defaultListenerConns  = 10000

	defaultBalance  = "round_robin"
	defaultRetries  = 2
	defaultMaxIdle  = 512
	defaultConnect  = 3 * time.Second
	defaultResponse = 60 * time.Second
	defaultIdle     = 90 * time.Second

	defaultWeight          = 1
	defaultQueueWithLimits = 100 // max_queue when max_conns is set

	defaultKeepaliveType = "tcp"
	defaultMethod        = "HEAD"
	defaultCheckPath     = "/"
	defaultExpectStatus  = 200
	defaultInterval      = 5 * time.Second
	defaultTimeout       = 2 * time.Second
	defaultRise          = 2
	defaultFall          = 3
	defaultPassiveFall   = 5
	defaultPassiveWithin = 10 * time.Second
	defaultReuse         = true // http checks: Envoy's default; see the README
	defaultReuseMax      = 10
)

// defaulter fills fields that were not written, or did not decode (their
// mistake is already reported; a default keeps later checks from piling
// more mistakes on top).
type defaulter struct{ b *book }

func setDefault[T any](df defaulter, path string, dst *T, def T) {
	if !df.b.ok(path) {
		*dst = def
	}
}

func applyDefaults(c *Config, b *book) {
	df := defaulter{b}
	setDefault(df, "admin.listen", &c.Admin.Listen, defaultAdminListen)
	setDefault(df, "log.level", &c.Log.Level, defaultLogLevel)
	setDefault(df, "log.format", &c.Log.Format, defaultLogFormat)
	setDefault(df, "log.access", &c.Log.Access, defaultLogAccess)
	setDefault(df, "shutdown_timeout", &c.ShutdownTimeout, defaultShutdownTimeout)
	df.state(c.State)
	df.cluster(c.Cluster)
	for i := range c.Listeners {
		df.listener(&c.Listeners[i], index("listeners", i))
	}
	for i := range c.Pools {
		df.pool(&c.Pools[i], index("pools", i))
	}
}

func (df defaulter) listener(l *Listener, path string) {
	t := join(path, "timeouts")
	setDefault(df, join(t, "client_header"), &l.Timeouts.ClientHeader, defaultClientHeader)
	setDefault(df, join(t, "client_idle"), &l.Timeouts.ClientIdle, defaultClientIdle)
	setDefault(df, join(t, "client_body"), &l.Timeouts.ClientBody, defaultClientBody)
	setDefault(df, join(t, "tunnel_idle"), &l.Timeouts.TunnelIdle, defaultTunnelIdle)
	lim := join(path, "limits")
	setDefault(df, join(lim, "max_header_bytes"), &l.Limits.MaxHeaderBytes, defaultMaxHeaderBytes)
	setDefault(df, join(lim, "max_body"), &l.Limits.MaxBody, defaultMaxBody)
	setDefault(df, join(lim, "max_conns"), &l.Limits.MaxConns, defaultListenerConns)
}

func (df defaulter) pool(p *Pool, path string) {
	setDefault(df, join(path, "balance"), &p.Balance, defaultBalance)
	setDefault(df, join(path, "retries"), &p.Retries, defaultRetries)
	setDefault(df, join(path, "client_ip"), &p.ClientIP, "forwarded")
	setDefault(df, join(path, "max_idle"), &p.MaxIdle, defaultMaxIdle)
	t := join(path, "timeouts")
	setDefault(df, join(t, "connect"), &p.Timeouts.Connect, defaultConnect)
	setDefault(df, join(t, "response"), &p.Timeouts.Response, defaultResponse)
	setDefault(df, join(t, "idle"), &p.Timeouts.Idle, defaultIdle)
	for i := range p.Servers {
		s, sp := &p.Servers[i], index(join(path, "servers"), i)
		setDefault(df, join(sp, "weight"), &s.Weight, defaultWeight)
		setDefault(df, join(sp, "max_conns"), &s.MaxConns, 0)
		queue := 0
		if s.MaxConns > 0 {
			queue = defaultQueueWithLimits
		}
		setDefault(df, join(sp, "max_queue"), &s.MaxQueue, queue)
	}
	df.keepalive(&p.Keepalive, join(path, "keepalive"))
	df.persistence(&p.Persistence, join(path, "persistence"))
}

func (df defaulter) keepalive(k *Keepalive, path string) {
	setDefault(df, join(path, "type"), &k.Type, defaultKeepaliveType)
	if k.Type == "http" {
		setDefault(df, join(path, "method"), &k.Method, defaultMethod)
		setDefault(df, join(path, "path"), &k.Path, defaultCheckPath)
		if !df.b.ok(join(path, "expect_status")) {
			k.ExpectStatus = []int{defaultExpectStatus}
		}
		setDefault(df, join(path, "reuse"), &k.Reuse, defaultReuse)
		if k.Reuse {
			setDefault(df, join(path, "reuse_max"), &k.ReuseMax, defaultReuseMax)
		}
	}
	setDefault(df, join(path, "interval"), &k.Interval, defaultInterval)
	setDefault(df, join(path, "down_interval"), &k.DownInterval, k.Interval)
	setDefault(df, join(path, "timeout"), &k.Timeout, defaultTimeout)
	setDefault(df, join(path, "rise"), &k.Rise, defaultRise)
	setDefault(df, join(path, "fall"), &k.Fall, defaultFall)
	if k.Passive != nil {
		p := join(path, "passive")
		setDefault(df, join(p, "fall"), &k.Passive.Fall, defaultPassiveFall)
		setDefault(df, join(p, "within"), &k.Passive.Within, defaultPassiveWithin)
	}
}
