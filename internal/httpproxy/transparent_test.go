package httpproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
	"github.com/fulcrumlb/fulcrum/internal/tcpproxy"
	"golang.org/x/sys/unix"
)

// netnsTopology builds, inside this machine only, a client namespace and a
// server namespace joined to the test's own namespace by veth pairs:
//
//	cli ns 10.231.1.2 <-> 10.231.1.1 [test ns: fulcrum] 10.231.2.1 <-> 10.231.2.2 srv ns
//
// Servers' replies to client addresses come back through the test namespace,
// where a policy route delivers them locally, to fulcrum's transparent
// sockets.
type netnsTopology struct {
	cli, srv string
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newTopology(t *testing.T) *netnsTopology {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("transparent mode test: needs root to create network namespaces (skipped: not root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("transparent mode test: the ip command (iproute2) is not installed")
	}
	if err := tcpproxy.CheckTransparent(); err != nil {
		t.Skipf("transparent mode test: %v", err)
	}
	suffix := fmt.Sprint(os.Getpid() % 100000)
	n := &netnsTopology{cli: "fcli" + suffix, srv: "fsrv" + suffix}
	if out, err := exec.Command("ip", "netns", "add", n.cli).CombinedOutput(); err != nil {
		t.Skipf("transparent mode test: cannot create network namespaces here: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.cli).Run()
		exec.Command("ip", "netns", "del", n.srv).Run()
		exec.Command("ip", "link", "del", "fc1"+suffix).Run()
		exec.Command("ip", "link", "del", "fs1"+suffix).Run()
		exec.Command("ip", "rule", "del", "iif", "fs1"+suffix, "lookup", "231").Run()
		exec.Command("ip", "route", "flush", "table", "231").Run()
	})
	c0, c1, s0, s1 := "fc0"+suffix, "fc1"+suffix, "fs0"+suffix, "fs1"+suffix
	run(t, "ip", "netns", "add", n.srv)
	run(t, "ip", "link", "add", c1, "type", "veth", "peer", "name", c0, "netns", n.cli)
	run(t, "ip", "link", "add", s1, "type", "veth", "peer", "name", s0, "netns", n.srv)
	run(t, "ip", "addr", "add", "10.231.1.1/24", "dev", c1)
	run(t, "ip", "addr", "add", "10.231.2.1/24", "dev", s1)
	run(t, "ip", "link", "set", c1, "up")
	run(t, "ip", "link", "set", s1, "up")
	run(t, "ip", "-n", n.cli, "addr", "add", "10.231.1.2/24", "dev", c0)
	run(t, "ip", "-n", n.cli, "link", "set", c0, "up")
	run(t, "ip", "-n", n.cli, "link", "set", "lo", "up")
	run(t, "ip", "-n", n.cli, "route", "add", "default", "via", "10.231.1.1")
	run(t, "ip", "-n", n.srv, "addr", "add", "10.231.2.2/24", "dev", s0)
	run(t, "ip", "-n", n.srv, "link", "set", s0, "up")
	run(t, "ip", "-n", n.srv, "link", "set", "lo", "up")
	run(t, "ip", "-n", n.srv, "route", "add", "default", "via", "10.231.2.1")
	// Replies from the server side to client addresses are for fulcrum's
	// transparent sockets: deliver them locally instead of forwarding.
	run(t, "ip", "rule", "add", "iif", s1, "lookup", "231")
	run(t, "ip", "route", "add", "local", "10.231.1.0/24", "dev", "lo", "table", "231")
	return n
}

// inNetns runs fn on an OS thread that has joined the named namespace;
// sockets fn creates stay in that namespace.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is left in the namespace and never unlocked, so the
		// runtime retires it when this goroutine ends.
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns %s: %v", name, err)
			return
		}
		fn()
	}()
	<-done
}

func TestTransparentModeInNamespaces(t *testing.T) {
	n := newTopology(t)
	var srvLn net.Listener
	inNetns(t, n.srv, func() {
		var err error
		srvLn, err = net.Listen("tcp", "10.231.2.2:8080")
		if err != nil {
			t.Errorf("server listen: %v", err)
		}
	})
	if srvLn == nil {
		t.FailNow()
	}
	defer srvLn.Close()
	go http.Serve(srvLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "server saw %s", r.RemoteAddr)
	}))

	f := startProxyOn(t, "10.231.1.1:0", fixtureOpts{clientIP: httpproxy.ClientIPTransparent}, "10.231.2.2:8080")
	var got string
	inNetns(t, n.cli, func() {
		c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
		if err != nil {
			t.Errorf("client dial: %v", err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("client read: %v", err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		got = string(b)
	})
	if !strings.HasPrefix(got, "server saw 10.231.1.2:") {
		t.Fatalf("got %q, want the server to see the client's own address 10.231.1.2", got)
	}
}
