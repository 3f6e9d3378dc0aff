package tcpproxy_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/balance"
	"github.com/fulcrumlb/fulcrum/internal/pool"
	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
	"github.com/pires/go-proxyproto"
)

// TestTCPPoolSendsProxyHeader: a TCP pool with client_ip proxy_v1/v2 tells
// the server who the client is before the client's first byte.
func TestTCPPoolSendsProxyHeader(t *testing.T) {
	for _, version := range []byte{1, 2} {
		srv, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		got := make(chan string, 1)
		go func() {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			h, err := proxyproto.Read(br)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			line, _ := br.ReadString('\n')
			got <- h.SourceAddr.String() + " " + line
			io.WriteString(c, "bye\n")
		}()
		s := pool.NewServer("db1", srv.Addr().String(), 1)
		picker, _ := balance.New("least_conn", []balance.Candidate{s})
		h := tcpproxy.NewHandler(&tcpproxy.Config{Listener: "db", Pool: pool.New("pg", "least_conn", []*pool.Server{s}), Picker: picker,
			ConnectTimeout: time.Second, Idle: 5 * time.Second, ProxyHeader: version}, slog.New(slog.DiscardHandler))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				h.ServeConn(c)
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "hello\n")
		want := c.LocalAddr().String() + " hello\n"
		if g := <-got; g != want {
			t.Fatalf("v%d: server saw %q, want %q", version, g, want)
		}
		c.Close()
		ln.Close()
		h.Shutdown(context.Background())
	}
}
