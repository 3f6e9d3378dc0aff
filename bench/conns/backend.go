package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// backend is the application behind fulcrum, run in a child process of its
// own (this program with -serve-backend) so that its descriptors and memory
// are not the client's:
//
//	GET /          a 3-byte reply ("ok\n"), keep-alive
//	GET /ws        a WebSocket that echoes every message
//	GET /download?size=N[&chunked=1]
//	               N bytes of a fixed pattern, with Content-Length (or chunked)
//	               written 64 KiB at a time as fast as the connection takes them
type backend struct {
	srv  *http.Server
	ln   net.Listener
	done sync.WaitGroup
}

// chunk is what /download writes, again and again.
var chunk = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}()

func startBackend() (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /ws", echo)
	mux.HandleFunc("GET /download", download)
	b := &backend{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Hour}}
	b.done.Add(1)
	go func() {
		defer b.done.Done()
		b.srv.Serve(ln)
	}()
	return b, nil
}

// close stops the backend and cuts every connection it still has (hijacked
// WebSocket connections end when their clients close).
func (b *backend) close() {
	b.srv.Close()
	b.done.Wait()
}

// serveBackend is the child's side: it serves, prints its address, and
// stops when its standard input closes (the parent ended).
func serveBackend() error {
	b, err := startBackend()
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Println(b.ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// backendProcess is the parent's handle on the child.
type backendProcess struct {
	cmd   *exec.Cmd
	stdin io.Closer
	addr  string
}

// startBackendProcess runs this program with -serve-backend and reads the
// address it serves on.
func startBackendProcess() (*backendProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &backendProcess{cmd: exec.Command(self, "-serve-backend")}
	p.cmd.Stderr = os.Stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the backend: %w", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("reading the backend's address: %w", err)
	}
	p.addr = strings.TrimSpace(line)
	return p, nil
}

// stop closes the child's input, which ends it, and waits.
func (p *backendProcess) stop() {
	p.stdin.Close()
	p.cmd.Wait()
}

// echo sends every WebSocket message back until the connection ends.
func echo(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := context.Background() // the request's context ends with the hijack's handler
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

// download streams size bytes of the pattern.
func download(w http.ResponseWriter, r *http.Request) {
	size, err := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	if err != nil || size < 0 {
		http.Error(w, "size: want bytes", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.URL.Query().Get("chunked") == "" {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	for size > 0 {
		n := min(size, int64(len(chunk)))
		if _, err := w.Write(chunk[:n]); err != nil {
			return // the client went away
		}
		size -= n
	}
}
