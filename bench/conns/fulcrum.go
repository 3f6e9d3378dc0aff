package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildFulcrum builds ./cmd/fulcrum of the checkout at root into dir. When
// the tree does not build (someone is mid-edit), it waits a minute and
// tries again, up to tries times.
func buildFulcrum(ctx context.Context, root, dir string, tries int) (string, error) {
	bin := filepath.Join(dir, "fulcrum")
	for try := 1; ; try++ {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/fulcrum")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err == nil {
			return bin, nil
		}
		if try == tries || ctx.Err() != nil {
			return "", fmt.Errorf("go build ./cmd/fulcrum: %w\n%s", err, out)
		}
		logf("go build ./cmd/fulcrum failed (try %d of %d), retrying in a minute:\n%s", try, tries, out)
		select {
		case <-time.After(time.Minute):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// moduleRoot is the directory of the go.mod governing the working directory.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the fulcrum module: run from the checkout")
	}
	return filepath.Dir(mod), nil
}

// fulcrum is one running fulcrum process.
type fulcrum struct {
	cmd   *exec.Cmd
	web   string // the HTTP listener
	admin string
	done  chan error
}

// fulcrumConfig listens on web with one pool holding the backend. The
// client-side idle timeout and the connection limit are lifted so that
// parked connections stay for the whole measurement; the server needs no
// keepalive (it is in this process and up).
func fulcrumConfig(web, admin, backend string) string {
	return fmt.Sprintf(`admin: {listen: %s}
log: {access: false, level: warn}
listeners:
  - name: web
    listen: %s
    protocol: http
    timeouts: {client_idle: 30m, tunnel_idle: 30m}
    limits: {max_conns: 0}
    pool: app
pools:
  - name: app
    balance: round_robin
    keepalive: {type: none}
    servers: [{name: a, address: %s}]
`, admin, web, backend)
}

// startFulcrum runs bin with a fresh config in dir and waits until its admin
// API answers.
func startFulcrum(bin, dir, backend string) (*fulcrum, error) {
	web, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "fulcrum.yaml")
	if err := os.WriteFile(path, []byte(fulcrumConfig(web, admin, backend)), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "fulcrum.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child keeps its own descriptor
	f := &fulcrum{web: web, admin: admin, done: make(chan error, 1)}
	f.cmd = exec.Command(bin, "run", "-c", path)
	f.cmd.Stdout, f.cmd.Stderr = logFile, logFile
	if err := f.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { f.done <- f.cmd.Wait() }()
	for range 100 {
		resp, err := http.Get("http://" + admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			return f, nil
		}
		select {
		case err := <-f.done:
			return nil, fmt.Errorf("fulcrum exited at start (%v): see %s/fulcrum.log", err, dir)
		case <-time.After(100 * time.Millisecond):
		}
	}
	f.stop()
	return nil, fmt.Errorf("fulcrum's admin API did not answer within 10s: see %s/fulcrum.log", dir)
}

// stop ends fulcrum: SIGTERM, then SIGKILL after 10 seconds.
func (f *fulcrum) stop() {
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
		f.cmd.Process.Kill()
		<-f.done
	}
}

// kill ends fulcrum at once.
func (f *fulcrum) kill() {
	f.cmd.Process.Kill()
	<-f.done
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// sample is fulcrum's memory at one moment.
type sample struct {
	rssKB, hwmKB int64   // VmRSS and VmHWM (peak RSS) from /proc/PID/status
	heapMB       float64 // go_memstats_heap_inuse_bytes
	stackMB      float64 // go_memstats_stack_inuse_bytes
	goroutines   int     // go_goroutines
	fds          int     // open file descriptors
	load         string  // 1-minute load average of the machine
}

// measure samples fulcrum's memory, its Go runtime's view (admin metrics)
// and its open descriptors.
func (f *fulcrum) measure() (sample, error) {
	s, err := readStatus(f.cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", f.cmd.Process.Pid)); err == nil {
		s.fds = len(ents)
	}
	s.load = loadAvg()
	m, err := metrics(f.admin)
	if err != nil {
		return s, err
	}
	s.heapMB = m["go_memstats_heap_inuse_bytes"] / (1 << 20)
	s.stackMB = m["go_memstats_stack_inuse_bytes"] / (1 << 20)
	s.goroutines = int(m["go_goroutines"])
	return s, nil
}

// collect makes fulcrum run a garbage collection (the heap profile's gc=1).
func (f *fulcrum) collect() error {
	resp, err := http.Get("http://" + f.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("forcing a GC: %w", err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// saveHeap writes fulcrum's heap profile (after a GC) to path.
func (f *fulcrum) saveHeap(path string) error {
	resp, err := http.Get("http://" + f.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("heap profile: %s", resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readStatus reads VmRSS and VmHWM of pid.
func readStatus(pid int) (sample, error) {
	var s sample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(b)) {
		name, rest, _ := strings.Cut(line, ":")
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		switch name {
		case "VmRSS":
			s.rssKB, _ = strconv.ParseInt(fields[0], 10, 64)
		case "VmHWM":
			s.hwmKB, _ = strconv.ParseInt(fields[0], 10, 64)
		}
	}
	return s, nil
}

// metrics reads the unlabelled samples of fulcrum's Prometheus metrics.
func metrics(admin string) (map[string]float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("reading metrics: %w", err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// loadAvg is the machine's 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
