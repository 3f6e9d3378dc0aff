package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestReloadWhileDialing reloads while every request dials the server anew
// (the backend closes each connection), so Reload's Upstream.SetOptions runs
// alongside Upstream.dial. Run it with -race.
func TestReloadWhileDialing(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "a")
	}))
	defer backend.Close()
	web, admin := freePort(t), freePort(t)
	f := start(t, configText(web, admin, backend.Listener.Addr().String()))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		c := newClient(t)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if code, got, err := tryFetch(c, "http://"+web+"/", nil); err != nil || code != 200 {
					t.Errorf("during reloads: %d %q %v", code, got, err)
					return
				}
			}
		}()
	}
	for i := range 50 {
		if err := f.app.Reload(); err != nil {
			t.Errorf("reload %d: %v", i, err)
			break
		}
	}
	close(stop)
	wg.Wait()
}
