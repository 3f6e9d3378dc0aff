package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Targets of the performance issue, for 10,000 connections and a 1 GiB
// download: what the connections add to fulcrum's RSS, and fulcrum's whole
// RSS at its peak during a download.
var connTargetMB = map[string]float64{"idle": 40, "ws": 80}

const downloadTargetMB = 64

var scenarioNames = map[string]string{
	"idle": "idle keep-alive HTTP/1.1 connections",
	"ws":   "open WebSocket tunnels",
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// print writes the tables to stdout.
func (b *bench) print(conns []connRow, downloads []downloadRow) {
	w := os.Stdout
	fmt.Fprintf(w, "\nfulcrum: %s; %d CPUs, %s, open files %d, %s\n", b.bin, runtime.NumCPU(), runtime.Version(), b.files, time.Now().UTC().Format("2006-01-02T15:04Z"))
	if len(conns) > 0 {
		fmt.Fprintln(w, "\n| scenario | conns | RSS MB before | RSS MB with | RSS MB after GC | cost MB (RSS added) | KB per conn | cost MB per 10,000 | Go heap MB | stacks MB | goroutines | fds | check | target | load 1m |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
		for _, r := range conns {
			c := r.collected
			cost := mb(c.rssKB - r.before.rssKB)
			fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %d | %s | %s | %s |\n",
				scenarioNames[r.name], r.conns, mb(r.before.rssKB), mb(r.with.rssKB), mb(c.rssKB), cost,
				cost*1024/float64(r.conns), cost*10000/float64(r.conns), c.heapMB, c.stackMB, c.goroutines, c.fds,
				r.check, verdict(cost, connTargetMB[r.name]*float64(r.conns)/10000), c.load)
		}
	}
	if len(downloads) > 0 {
		fmt.Fprintln(w, "\n| download | MiB | client MiB/s | RSS MB before | peak RSS MB (100 ms samples) | VmHWM MB | RSS MB 2 s after | Go heap MB after | target | load 1m |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
		for _, r := range downloads {
			mib := float64(r.d.bytes) / (1 << 20)
			fmt.Fprintf(w, "| %s | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s |\n",
				r.mode, mib, mib/r.d.took.Seconds(), mb(r.before.rssKB), mb(r.d.peakKB), mb(r.after.hwmKB),
				mb(r.after.rssKB), r.after.heapMB, verdict(mb(r.after.hwmKB), downloadTargetMB), r.d.load)
		}
	}
	fmt.Fprintln(w, "\n"+strings.ReplaceAll(strings.TrimSpace(`
before: a fresh fulcrum after one request and a GC; with: SETTLE after the last connection opened;
after GC: a forced GC (the runtime runs one at least every 2 minutes), then SETTLE again;
cost = RSS after GC minus RSS before; heap, stacks, goroutines, fds: after GC;
target: the performance issue's (connections: cost, scaled to the count; download: VmHWM, fulcrum's peak RSS).`), "SETTLE", b.o.settle.String()))
}

// verdict compares got with an upper bound.
func verdict(got, limit float64) string {
	if got < limit {
		return fmt.Sprintf("< %.0f MB: met", limit)
	}
	return fmt.Sprintf("< %.0f MB: not met", limit)
}
