package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// dialer connects from several loopback source addresses in turn
// (127.0.0.2, 127.0.0.3, ...) so that tens of thousands of connections to
// one address and port never run short of ephemeral ports.
type dialer struct {
	sources int
	next    atomic.Uint32
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	i := int(d.next.Add(1)) % d.sources
	nd := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}}
	return nd.DialContext(ctx, network, addr)
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns the
// first error.
func parallel(n, workers int, fn func(worker, i int) error) error {
	var (
		next  atomic.Int64
		first error
		once  sync.Once
		wg    sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(w, i); err != nil {
					once.Do(func() { first = fmt.Errorf("connection %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// workers is how many connections are opened at once.
const workers = 32

// idleConns opens n keep-alive connections to addr, each sending one GET /
// and reading the reply, and returns them open.
func idleConns(d *dialer, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, workers)
	err := parallel(n, workers, func(w, i int) error {
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			return err
		}
		conns[i] = c
		if readers[w] == nil {
			readers[w] = bufio.NewReaderSize(c, 4096)
		}
		readers[w].Reset(c)
		return get(c, readers[w])
	})
	return conns, err
}

// get sends one GET / on c and reads the reply.
func get(c net.Conn, br *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		return fmt.Errorf("got %s (close %v), want 200 kept alive", resp.Status, resp.Close)
	}
	return nil
}

// checkIdle sends a second request on every 100th connection: a parked
// connection must still be served.
func checkIdle(conns []net.Conn) string {
	ok, tried := 0, 0
	br := bufio.NewReader(nil)
	for i := 0; i < len(conns); i += 100 {
		tried++
		br.Reset(conns[i])
		if get(conns[i], br) == nil {
			ok++
		}
	}
	return fmt.Sprintf("%d/%d answer again", ok, tried)
}

// tunnels opens n WebSocket tunnels through addr to the echo endpoint, each
// echoing one message, and returns them open.
func tunnels(d *dialer, addr string, n int) ([]*websocket.Conn, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	conns := make([]*websocket.Conn, n)
	err := parallel(n, workers, func(_, i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: client})
		if err != nil {
			return err
		}
		conns[i] = c
		return echoOnce(ctx, c, i)
	})
	return conns, err
}

// echoOnce sends a message and expects it back.
func echoOnce(ctx context.Context, c *websocket.Conn, i int) error {
	msg := fmt.Appendf(nil, "hello %d", i)
	if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
		return err
	}
	_, got, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo: got %q, want %q", got, msg)
	}
	return nil
}

// checkTunnels echoes again on every 100th tunnel.
func checkTunnels(conns []*websocket.Conn) string {
	ok, tried := 0, 0
	for i := 0; i < len(conns); i += 100 {
		tried++
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if echoOnce(ctx, conns[i], i) == nil {
			ok++
		}
		cancel()
	}
	return fmt.Sprintf("%d/%d echo again", ok, tried)
}

// downloadResult is one download through fulcrum.
type downloadResult struct {
	bytes  int64
	took   time.Duration
	peakKB int64 // highest VmRSS sampled every 100 ms while it ran
	load   string
}

// slowDownload reads size bytes from url at about rate bytes a second (0:
// as fast as it can) while sampling pid's RSS every 100 ms.
func slowDownload(url string, size, rate int64, pid int) (downloadResult, error) {
	var r downloadResult
	stop := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if s, err := readStatus(pid); err == nil {
				peak = max(peak, s.rssKB)
			}
			select {
			case <-tick.C:
			case <-stop:
				sampled <- peak
				return
			}
		}
	}()
	start := time.Now()
	err := readSlowly(url, size, rate, &r.bytes)
	r.took = time.Since(start)
	r.load = loadAvg()
	close(stop)
	r.peakKB = <-sampled
	return r, err
}

// readSlowly GETs url and reads its body at about rate bytes a second,
// counting into n.
func readSlowly(url string, size, rate int64, n *int64) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for {
		k, err := resp.Body.Read(buf)
		*n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(*n) / float64(rate) * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
	}
	if *n != size {
		return fmt.Errorf("GET %s: got %d bytes, want %d", url, *n, size)
	}
	return nil
}
