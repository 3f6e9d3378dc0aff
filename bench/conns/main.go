// Command conns measures what open connections and large downloads cost
// fulcrum in memory, on the real binary:
//
//	go run ./bench/conns [--conns 10000] [--download 1024] [--rate 64]
//	                     [--only idle,ws,download] [--fulcrum-bin PATH]
//
// It builds ./cmd/fulcrum into a temporary directory (or runs --fulcrum-bin),
// starts a backend in a child process (this program with -serve-backend: a
// tiny reply on /, a WebSocket echo on /ws, a streamed download on
// /download) and, for each scenario, a fresh fulcrum in front of it, so that
// every figure starts from the same idle process:
//
//	idle      --conns keep-alive HTTP/1.1 client connections, each having done
//	          one request, left idle
//	ws        --conns WebSocket tunnels, each having echoed one message
//	download  one download of --download MiB read at --rate MiB/s, once with
//	          Content-Length and once chunked; RSS sampled every 100 ms
//
// fulcrum's VmRSS and VmHWM come from /proc/PID/status, its Go heap,
// goroutine stacks and goroutine count from its admin metrics; connections
// are sampled --settle after opening and again after a forced GC. It raises
// the open-files limit for itself and its children (setrlimit; past the hard
// limit only with CAP_SYS_RESOURCE, else it opens as many as fit) and
// spreads client connections over source addresses 127.0.0.2..
// (--sources). It prints Markdown tables; the 1-minute load average beside
// each figure tells whether the machine was busy. bench/README.md has the
// method.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	fulcrumBin string
	conns      int
	downloadMB int64
	rateMB     int64
	only       map[string]bool
	sources    int
	settle     time.Duration
	keep       bool
	profile    bool
	buildTries int
}

func main() {
	var o options
	only := "idle,ws,download"
	flag.StringVar(&o.fulcrumBin, "fulcrum-bin", "", "measure this fulcrum binary instead of building ./cmd/fulcrum")
	flag.IntVar(&o.conns, "conns", 10000, "connections (idle) and tunnels (ws) to open")
	flag.Int64Var(&o.downloadMB, "download", 1024, "download size, MiB")
	flag.Int64Var(&o.rateMB, "rate", 64, "download read rate of the client, MiB/s (0: as fast as it can)")
	flag.StringVar(&only, "only", only, "scenarios to run, comma-separated: idle, ws, download")
	flag.IntVar(&o.sources, "sources", 4, "client source addresses (127.0.0.2 and up)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait after opening connections before sampling, and again after a GC")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (binary, config, fulcrum's log)")
	flag.BoolVar(&o.profile, "profile", false, "save fulcrum's heap profile with the connections open (SCENARIO-heap.pprof in the kept work directory)")
	flag.IntVar(&o.buildTries, "build-tries", 5, "builds to try, a minute apart, while the tree does not build")
	serve := flag.Bool("serve-backend", false, "run as the backend (the harness starts itself so)")
	flag.Parse()
	if *serve {
		if err := serveBackend(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/conns backend:", err)
			os.Exit(1)
		}
		return
	}
	o.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		o.only[strings.TrimSpace(s)] = true
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/conns:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/conns: "+format+"\n", args...)
}

// bench is one run: where it works and what it started.
type bench struct {
	o       options
	dir     string
	bin     string
	backend *backendProcess
	dialer  *dialer
	files   int // open files a process may have

	mu      sync.Mutex
	current *fulcrum // stopped on Ctrl-C, as is backend
}

func run(o options) (err error) {
	files, err := raiseFileLimit(uint64(2*o.conns + fileReserve))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "fulcrum-conns.")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || o.keep || o.profile {
			logf("work directory kept: %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	b := &bench{o: o, dir: dir, bin: o.fulcrumBin, dialer: &dialer{sources: max(1, o.sources)}, files: int(files)}
	// On Ctrl-C: stop the build or the running fulcrum, then exit (the
	// backend ends when its input closes with this process).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		<-sig
		cancel()
		b.mu.Lock()
		if b.current != nil {
			b.current.kill() // not stop: it would wait for the open connections
		}
		if b.backend != nil {
			b.backend.stop()
		}
		logf("interrupted; work directory: %s", dir)
		os.Exit(130)
	}()
	if b.bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return err
		}
		logf("building ./cmd/fulcrum into %s", dir)
		if b.bin, err = buildFulcrum(ctx, root, dir, o.buildTries); err != nil {
			return err
		}
	}
	be, err := startBackendProcess()
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.backend = be
	b.mu.Unlock()
	defer be.stop()
	return b.scenarios()
}

// fileReserve is the descriptors a process needs besides the measured
// connections (listeners, logs, the upstream pool, splice pipes).
const fileReserve = 200

// raiseFileLimit lifts RLIMIT_NOFILE to want (soft and hard) when it can,
// else the soft limit to the hard one, and returns the limit in force.
// Children, fulcrum among them, inherit it. Raising the hard limit needs
// CAP_SYS_RESOURCE.
func raiseFileLimit(want uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			return want, nil
		}
		logf("open files: hard limit %d, below the %d wanted, cannot be raised here (no CAP_SYS_RESOURCE)", l.Max, want)
	}
	l.Cur = max(l.Cur, min(want, l.Max))
	return l.Cur, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// fit is how many of the wanted connections fit the open-files limit when
// fulcrum holds perConn descriptors for each.
func (b *bench) fit(perConn int) int {
	n := min(b.o.conns, (b.files-fileReserve)/perConn)
	if n < b.o.conns {
		logf("open files: %d allow %d connections, not %d: measuring %d and scaling the target", b.files, n, b.o.conns, n)
	}
	return n
}

// scenarios runs the chosen scenarios and prints their tables.
func (b *bench) scenarios() error {
	var conns []connRow
	var downloads []downloadRow
	var errs []string
	for _, sc := range []struct {
		name    string
		perConn int // fulcrum's descriptors per connection
		open    func(f *fulcrum, n int) (opened, error)
	}{
		{"idle", 1, b.openIdle},
		{"ws", 2, b.openTunnels}, // the client's and the server's
	} {
		if !b.o.only[sc.name] {
			continue
		}
		row, err := b.connScenario(sc.name, b.fit(sc.perConn), sc.open)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", sc.name, err))
			continue
		}
		conns = append(conns, row)
	}
	if b.o.only["download"] {
		for _, chunked := range []bool{false, true} {
			row, err := b.downloadScenario(chunked)
			if err != nil {
				errs = append(errs, fmt.Sprintf("download: %v", err))
				continue
			}
			downloads = append(downloads, row)
		}
	}
	b.print(conns, downloads)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// start runs a fresh fulcrum, sends it one request and lets it settle.
func (b *bench) start() (*fulcrum, sample, error) {
	f, err := startFulcrum(b.bin, b.dir, b.backend.addr)
	if err != nil {
		return nil, sample{}, err
	}
	b.mu.Lock()
	b.current = f
	b.mu.Unlock()
	c, err := idleConns(b.dialer, f.web, 1)
	closeConns(c)
	if err != nil {
		b.stop(f)
		return nil, sample{}, fmt.Errorf("first request through fulcrum: %w", err)
	}
	if err := f.collect(); err != nil {
		b.stop(f)
		return nil, sample{}, err
	}
	time.Sleep(time.Second)
	s, err := f.measure()
	if err != nil {
		b.stop(f)
		return nil, s, err
	}
	return f, s, nil
}

func (b *bench) stop(f *fulcrum) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f.stop()
	b.current = nil
}

// connRow is one line of the connections table.
type connRow struct {
	name      string
	conns     int
	before    sample
	with      sample // settle after opening
	collected sample // settle after a GC that followed
	check     string
}

// opened is what a scenario left open: check tries a few of the
// connections again, close closes them all.
type opened struct {
	check func() string
	close func()
}

// connScenario opens connections with open on a fresh fulcrum, samples it
// after settling, then checks that the connections still work.
func (b *bench) connScenario(name string, n int, open func(*fulcrum, int) (opened, error)) (connRow, error) {
	row := connRow{name: name, conns: n}
	f, before, err := b.start()
	if err != nil {
		return row, err
	}
	defer b.stop(f)
	row.before = before
	logf("%s: opening %d connections", name, n)
	t0 := time.Now()
	op, err := open(f, n)
	defer op.close()
	if err != nil {
		return row, err
	}
	logf("%s: %d open after %.1fs", name, n, time.Since(t0).Seconds())
	time.Sleep(b.o.settle)
	if row.with, err = f.measure(); err != nil {
		return row, err
	}
	// The runtime collects at least every 2 minutes; a GC now shows the
	// steady state (what stays allocated, goroutine stacks given back)
	// without waiting for it.
	if err := f.collect(); err != nil {
		return row, err
	}
	time.Sleep(b.o.settle)
	if row.collected, err = f.measure(); err != nil {
		return row, err
	}
	if b.o.profile {
		if err := f.saveHeap(filepath.Join(b.dir, name+"-heap.pprof")); err != nil {
			return row, err
		}
	}
	row.check = op.check()
	return row, nil
}

func (b *bench) openIdle(f *fulcrum, n int) (opened, error) {
	conns, err := idleConns(b.dialer, f.web, n)
	return opened{
		check: func() string { return checkIdle(conns) },
		close: func() { closeConns(conns) },
	}, err
}

func (b *bench) openTunnels(f *fulcrum, n int) (opened, error) {
	conns, err := tunnels(b.dialer, f.web, n)
	return opened{
		check: func() string { return checkTunnels(conns) },
		close: func() {
			for _, c := range conns {
				if c != nil {
					c.CloseNow()
				}
			}
		},
	}, err
}

func closeConns(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// downloadRow is one line of the download table.
type downloadRow struct {
	mode          string
	before, after sample
	d             downloadResult
}

// downloadScenario downloads through a fresh fulcrum and samples it before,
// during (every 100 ms) and 2 s after.
func (b *bench) downloadScenario(chunked bool) (downloadRow, error) {
	row := downloadRow{mode: "Content-Length"}
	url := "/download?size=%d"
	if chunked {
		row.mode, url = "chunked", url+"&chunked=1"
	}
	f, before, err := b.start()
	if err != nil {
		return row, err
	}
	defer b.stop(f)
	row.before = before
	size := b.o.downloadMB << 20
	logf("download (%s): %d MiB at %d MiB/s", row.mode, b.o.downloadMB, b.o.rateMB)
	row.d, err = slowDownload("http://"+f.web+fmt.Sprintf(url, size), size, b.o.rateMB<<20, f.cmd.Process.Pid)
	if err != nil {
		return row, err
	}
	time.Sleep(2 * time.Second)
	row.after, err = f.measure()
	return row, err
}
