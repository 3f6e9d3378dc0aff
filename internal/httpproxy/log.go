package httpproxy

import "time"

// logRequest hands one access record to the access logger, if any.
func (cc *clientConn) logRequest(cfg *Config, start time.Time, rule int, t *Target, o outcome) {
	if cc.h.access == nil {
		return
	}
	cc.h.access(cc.accessRecord(cfg, start, rule, t, o))
}

// accessRecord is the access log record of the request just handled.
func (cc *clientConn) accessRecord(cfg *Config, start time.Time, rule int, t *Target, o outcome) *AccessRecord {
	req := &cc.req
	rec := &AccessRecord{
		Client:   string(cc.id.clientText),
		Method:   string(req.method),
		Host:     string(req.host),
		Path:     string(req.path),
		Listener: cfg.Listener,
		Status:   o.status,
		Bytes:    o.bytes,
		Duration: time.Since(start),
		Err:      o.err,
	}
	if rule >= 0 && rule < len(cfg.RouteNames) {
		rec.Route = cfg.RouteNames[rule]
	}
	if t != nil {
		rec.Pool = t.Pool.Name()
	}
	if o.server != nil {
		rec.Server = o.server.Name()
	}
	return rec
}
