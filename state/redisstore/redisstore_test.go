package redisstore_test

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/redisstore"
	"github.com/fulcrumlb/fulcrum/state/storetest"
)

// redisURL is the test server: FULCRUM_TEST_REDIS_ADDR (default
// 127.0.0.1:6379). Tests fail, never skip, when it does not answer.
func redisURL() string {
	addr := os.Getenv("FULCRUM_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	return "redis://" + addr + "/0"
}

// newStore returns a store under a prefix of its own and removes its keys
// when the test ends.
func newStore(t *testing.T) state.Store {
	t.Helper()
	prefix := "fulcrum-test:" + state.NewLockID() + ":"
	s, err := redisstore.Open(t.Context(), redisURL(), redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatalf("Redis is required (set FULCRUM_TEST_REDIS_ADDR or run make services): %v", err)
	}
	t.Cleanup(func() { cleanup(t, prefix) })
	return s
}

func cleanup(t *testing.T, prefix string) {
	o, _ := redis.ParseURL(redisURL())
	rdb := redis.NewClient(o)
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("removing test keys: %v", err)
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newStore)
}
