package state_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/state"
	"github.com/fulcrumlb/fulcrum/state/service"
)

// BenchmarkRoundTrip measures one read-write request cycle through the HTTP
// API on loopback: GET ?lock=exclusive then PUT with Lock-Id, each parallel
// client on its own 1KiB session. It reports cycles/s and the p99 of a cycle.
func BenchmarkRoundTrip(b *testing.B) {
	for _, name := range []string{"memory", "bolt", "redis", "postgres"} {
		b.Run(name, func(b *testing.B) {
			cfg := benchStoreConfig(b, name)
			store, err := service.OpenStore(b.Context(), cfg)
			if err != nil {
				b.Fatalf("opening the %s store: %v", name, err)
			}
			srv, err := state.NewServer(state.Options{Store: store})
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			hs := newBenchServer(b, srv)
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			payload := bytes.Repeat([]byte("x"), 1024)
			var mu sync.Mutex
			var lat []time.Duration
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := benchCreate(b, hc, hs, payload)
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					req, _ := http.NewRequest("GET", hs+"/v1/sessions/"+id+"?lock=exclusive&wait=5s", nil)
					res, err := hc.Do(req)
					if err != nil || res.StatusCode != 200 {
						b.Errorf("lock: %v %v", res, err)
						return
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					req, _ = http.NewRequest("PUT", hs+"/v1/sessions/"+id, bytes.NewReader(payload))
					req.Header.Set("Lock-Id", res.Header.Get("Lock-Id"))
					res, err = hc.Do(req)
					if err != nil || res.StatusCode != 204 {
						b.Errorf("put: %v %v", res, err)
						return
					}
					res.Body.Close()
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			if len(lat) > 0 {
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
			}
		})
	}
}

func benchStoreConfig(b *testing.B, name string) service.StoreConfig {
	switch name {
	case "bolt":
		return service.StoreConfig{Type: "bolt", Path: b.TempDir() + "/state.db"}
	case "redis":
		prefix := uniqueName("bench") + ":"
		b.Cleanup(func() { removeRedisKeys(b, prefix) })
		return service.StoreConfig{Type: "redis", URL: redisURL(), Prefix: prefix}
	case "postgres":
		schema := uniqueName("bench")
		b.Cleanup(func() { dropSchema(b, schema) })
		return service.StoreConfig{Type: "postgres", URL: postgresDSN(), Schema: schema}
	}
	return service.StoreConfig{Type: "memory"}
}

func newBenchServer(b *testing.B, srv *state.Server) string {
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(hs.Close)
	return hs.URL
}

func benchCreate(b *testing.B, hc *http.Client, base string, payload []byte) string {
	res, err := hc.Post(base+"/v1/sessions", "application/octet-stream", bytes.NewReader(payload))
	if err != nil || res.StatusCode != http.StatusCreated {
		b.Fatalf("create: %v %v", res, err)
	}
	res.Body.Close()
	return strings.TrimPrefix(res.Header.Get("Location"), "/v1/sessions/")
}
