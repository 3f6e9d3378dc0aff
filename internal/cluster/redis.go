package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fulcrumlb/fulcrum/internal/limit"
	"github.com/fulcrumlb/fulcrum/internal/persist"
)

// Redis layout, under the prefix P, per pool:
//
//	P t:<pool>   hash  session key -> "<seen>:<server>"
//	P z:<pool>   zset  session key, scored by seen (unix seconds): expiry
//	P changes    pub/sub channel: nodeLen u8 | node | batch (codec.go)
//
// Writes go through setScript (last writer wins by seen, as in the local
// table), so nodes may write concurrently. Any node sweeps keys idle past
// the pool's timeout (sweepScript, a bounded batch at a time). Nodes skip
// their own published batches.
//
// Redis is the farm's trust boundary in this mode: secure it with its own
// AUTH and TLS (rediss://user:pass@...). No request ever waits for it: a
// change is queued for the writer goroutine; when Redis is unreachable the
// local tables keep serving, and when it returns the node resyncs (pull
// what others wrote, push what it has).

const (
	// DefaultPrefix starts every key when RedisOptions.Prefix is empty.
	DefaultPrefix = "fulcrum:cluster:"
	redisTimeout  = time.Second // per command: a slow Redis is a lost Redis
	sweepEvery    = 30 * time.Second
	sweepBatch    = 1000
	pullCount     = 1000
)

var setScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
local seen = tonumber(ARGV[3])
if old then
  local i = string.find(old, ':', 1, true)
  local oseen = tonumber(string.sub(old, 1, i - 1))
  if string.sub(old, i + 1) == ARGV[2] then
    if oseen >= seen then return 0 end
  elseif oseen > seen then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ':' .. ARGV[2])
redis.call('ZADD', KEYS[2], seen, ARGV[1])
return 1
`)

var deleteScript = redis.NewScript(`
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
`)

var sweepScript = redis.NewScript(`
local ks = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ks > 0 then
  redis.call('HDEL', KEYS[1], unpack(ks))
  redis.call('ZREM', KEYS[2], unpack(ks))
end
return #ks
`)

// redisLink shares this node's tables through Redis.
type redisLink struct {
	c      *Cluster
	url    string
	prefix string
	rdb    *redis.Client
	q      *queue
	st     stats
	pull   atomic.Bool // the subscription (re)started: fetch what was missed
}

func newRedisLink(c *Cluster, o RedisOptions) (*redisLink, error) {
	ro, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster: parsing redis url: %w", err)
	}
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = redisTimeout, redisTimeout, redisTimeout
	ro.MaxRetries = -1 // fail fast; the link retries as a whole
	ro.PoolSize = 4
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	return &redisLink{c: c, url: o.URL, prefix: o.Prefix, rdb: redis.NewClient(ro), q: newQueue(c.o.QueueLimit, c.o.Now)}, nil
}

func (r *redisLink) hashKey(pool string) string { return r.prefix + "t:" + pool }
func (r *redisLink) zsetKey(pool string) string { return r.prefix + "z:" + pool }
func (r *redisLink) channel() string            { return r.prefix + "changes" }

func (r *redisLink) start(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(2)
	go func() { defer wg.Done(); r.write(ctx) }()
	go func() { defer wg.Done(); r.subscribe(ctx) }()
}

func (r *redisLink) close() { r.rdb.Close() }

// write is the writer loop: connect (resync), then write queued changes,
// sweep now and then; on any failure go back to connecting.
func (r *redisLink) write(ctx context.Context) {
	wait := r.c.o.MinBackoff
	var items []change
	lastSweep := time.Time{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		if !r.st.connected.Load() {
			if err := r.connect(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				r.failed(err)
				if !sleep(ctx, wait) {
					return
				}
				wait = min(wait*2, r.c.o.MaxBackoff)
				continue
			}
			wait = r.c.o.MinBackoff
		}
		var resync bool
		var since time.Time
		items, since, resync = r.q.take(items)
		err := r.writeChanges(ctx, items, since)
		if err == nil && (resync || r.pull.Swap(false)) {
			err = r.resync(ctx)
		}
		if err == nil && time.Since(lastSweep) >= sweepEvery {
			lastSweep = time.Now()
			err = r.sweep(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.failed(err)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-r.q.wake:
		case <-tick.C:
			if err := r.rdb.Ping(ctx).Err(); err != nil && ctx.Err() == nil {
				r.failed(err)
			} else {
				r.st.synced(r.c.o.Now())
			}
		}
	}
}

// connect checks Redis answers, loads the scripts and resyncs.
func (r *redisLink) connect(ctx context.Context) error {
	if err := r.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connecting to redis: %w", err)
	}
	for _, s := range []*redis.Script{setScript, deleteScript, sweepScript} {
		if err := s.Load(ctx, r.rdb).Err(); err != nil {
			return fmt.Errorf("loading redis scripts: %w", err)
		}
	}
	r.pull.Store(false)
	if err := r.resync(ctx); err != nil {
		return err
	}
	r.st.connected.Store(true)
	r.c.log.Info("cluster store connected", "store", redactURL(r.url), "node", r.c.o.Node)
	return nil
}

// failed records a lost Redis: the local tables carry on, and everything
// is resynced when it answers again.
func (r *redisLink) failed(err error) {
	r.st.fail(err)
	if r.st.connected.Swap(false) {
		r.c.log.Warn("cluster store unreachable, serving from the local tables", "store", redactURL(r.url), "err", err)
	} else {
		r.c.log.Debug("cluster store unreachable", "err", err)
	}
	r.q.markResync()
	r.setInflight(nil)
}

func (r *redisLink) setInflight(f *flight) {
	r.st.mu.Lock()
	r.st.inflight = r.st.inflight[:0]
	if f != nil {
		r.st.inflight = append(r.st.inflight, *f)
	}
	r.st.mu.Unlock()
}

// writeChanges writes a batch in one pipeline and publishes it.
func (r *redisLink) writeChanges(ctx context.Context, items []change, since time.Time) error {
	if len(items) == 0 {
		return nil
	}
	r.setInflight(&flight{n: len(items), since: since})
	for len(items) > 0 {
		n := min(len(items), batchChanges)
		if err := r.writeBatch(ctx, items[:n], true); err != nil {
			return err
		}
		items = items[n:]
	}
	r.setInflight(nil)
	return nil
}

// writeBatch stores changes (and publishes them when publish is set).
func (r *redisLink) writeBatch(ctx context.Context, items []change, publish bool) error {
	pipe := r.rdb.Pipeline()
	var msg batchWriter
	msg.reset()
	for i := range items {
		c := &items[i]
		keys := []string{r.hashKey(c.pool), r.zsetKey(c.pool)}
		switch c.Op {
		case persist.OpSet:
			pipe.EvalSha(ctx, setScript.Hash(), keys, c.Key, c.Server, c.Seen.Unix())
		case persist.OpDelete:
			pipe.EvalSha(ctx, deleteScript.Hash(), keys, c.Key)
		}
		msg.add(c)
	}
	if publish {
		payload := appendString8(nil, r.c.o.Node)
		pipe.Publish(ctx, r.channel(), append(payload, msg.bytes()...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("writing to redis: %w", err)
	}
	r.st.sent.Add(uint64(len(items)))
	r.st.synced(r.c.o.Now())
	return nil
}

// resync pulls every pool's hash into the local table, then pushes the local
// table (what others missed while this node could not write).
func (r *redisLink) resync(ctx context.Context) error {
	r.st.resyncs.Add(1)
	for pool, t := range *r.c.tables.Load() {
		if err := r.pullPool(ctx, pool, t); err != nil {
			return err
		}
	}
	var batch []change
	var err error
	r.c.rangeTables(func(c change) bool {
		batch = append(batch, c)
		if len(batch) == batchChanges {
			err = r.writeBatch(ctx, batch, false)
			batch = batch[:0]
		}
		return err == nil
	})
	if err == nil && len(batch) > 0 {
		err = r.writeBatch(ctx, batch, false)
	}
	return err
}

func (r *redisLink) pullPool(ctx context.Context, pool string, t Table) error {
	var cursor uint64
	for {
		kv, next, err := r.rdb.HScan(ctx, r.hashKey(pool), cursor, "", pullCount).Result()
		if err != nil {
			return fmt.Errorf("reading from redis: %w", err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			seen, server, ok := strings.Cut(kv[i+1], ":")
			secs, err := strconv.ParseInt(seen, 10, 64)
			if !ok || err != nil {
				continue
			}
			t.Apply(persist.Change{Op: persist.OpSet, Key: kv[i], Server: server, Seen: time.Unix(secs, 0)})
			r.st.received.Add(1)
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// sweep removes keys idle past their pool's timeout.
func (r *redisLink) sweep(ctx context.Context) error {
	now := r.c.o.Now()
	for pool, t := range *r.c.tables.Load() {
		cutoff := now.Add(-t.Timeout()).Unix()
		for {
			n, err := sweepScript.Run(ctx, r.rdb, []string{r.hashKey(pool), r.zsetKey(pool)}, cutoff, sweepBatch).Int()
			if err != nil {
				return fmt.Errorf("sweeping redis: %w", err)
			}
			if n < sweepBatch {
				break
			}
		}
	}
	return nil
}

// subscribe applies the batches other nodes publish. A (re)subscription
// asks the writer for a pull, since messages sent meanwhile are lost.
func (r *redisLink) subscribe(ctx context.Context) {
	wait := r.c.o.MinBackoff
	for ctx.Err() == nil {
		err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		r.c.log.Debug("cluster store subscription lost", "err", err)
		if !sleep(ctx, wait) {
			return
		}
		wait = min(wait*2, r.c.o.MaxBackoff)
	}
}

func (r *redisLink) listen(ctx context.Context) error {
	ps := r.rdb.Subscribe(ctx)
	defer ps.Close()
	// A blocked read does not watch ctx: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	if err := ps.Subscribe(ctx, r.channel()); err != nil {
		return err
	}
	first := true
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Quiet channel: make sure the connection is still there.
			if err := ps.Ping(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if !first {
				r.pull.Store(true)
				select {
				case r.q.wake <- struct{}{}:
				default:
				}
			}
			first = false
		case *redis.Message:
			r.applyMessage(m.Payload)
		}
	}
}

func (r *redisLink) applyMessage(payload string) {
	p := []byte(payload)
	if len(p) < 1 || len(p) < 1+int(p[0]) {
		r.st.fail(fmt.Errorf("%w: short message", ErrMalformed))
		return
	}
	if string(p[1:1+p[0]]) == r.c.o.Node {
		return
	}
	n := uint64(0)
	if err := decodeBatch(p[1+p[0]:], proto1, func(c change) {
		if r.c.apply(limit.Source{}, c) {
			n++
		}
	}); err != nil {
		r.st.fail(err)
		return
	}
	r.st.received.Add(n)
}

// sleep waits d with ±10% jitter; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	d = d - d/10 + time.Duration(rand.Int64N(int64(d)/5+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
