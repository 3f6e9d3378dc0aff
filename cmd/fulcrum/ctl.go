package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const ctlUsage = `usage: fulcrum ctl [--admin URL] [--token-file F] [-o json] COMMAND

commands:
  status                       listeners, pools and server states at a glance
  pools                        every pool with its servers counted by state
  servers POOL                 the servers of a pool
  drain POOL/SERVER            no new clients; pinned clients keep coming
  enable POOL/SERVER           back to normal
  disable POOL/SERVER          no traffic at all
  weight POOL/SERVER N         set the weight (1..1000)
  checks POOL/SERVER           the latest keepalive checks and state changes
  persistence POOL [--key K]   entries per server, or the entry of one key
  reload                       re-read the config file

--admin defaults to $FULCRUM_ADMIN, else http://127.0.0.1:9090;
--token-file to $FULCRUM_TOKEN_FILE (none: no Authorization header).
-o json prints the API's answer as it came.
`

// ctlTimeout bounds each API call.
const ctlTimeout = 15 * time.Second

// ctl is a client of the admin API.
type ctl struct {
	base  *url.URL
	token string
	json  bool
	out   io.Writer
	http  *http.Client
}

// cmdCtl drives a running fulcrum through its admin API.
func cmdCtl(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage) }
	admin := fs.String("admin", envOr("FULCRUM_ADMIN", "http://127.0.0.1:9090"), "admin API base URL")
	tokenFile := fs.String("token-file", os.Getenv("FULCRUM_TOKEN_FILE"), "file holding the admin token")
	format := fs.String("o", "table", "output: table or json")
	key := fs.String("key", "", "persistence: the key to look up")
	if err := fs.Parse(reorder(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{code: 2}
	}
	if *format != "table" && *format != "json" {
		return exitError{code: 2, msg: fmt.Sprintf("fulcrum ctl: -o %q: want table or json", *format)}
	}
	base, err := url.Parse(strings.TrimSuffix(*admin, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return exitError{code: 2, msg: fmt.Sprintf("fulcrum ctl: --admin %q: want http://host:port", *admin)}
	}
	c := &ctl{base: base, json: *format == "json", out: stdout, http: &http.Client{Timeout: ctlTimeout}}
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("reading token: %w", err)
		}
		if c.token = strings.TrimSpace(string(b)); c.token == "" {
			return fmt.Errorf("token file %s is empty", *tokenFile)
		}
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, ctlUsage)
		return exitError{code: 2}
	}
	return c.run(ctx, fs.Arg(0), fs.Args()[1:], *key)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// run dispatches one command.
func (c *ctl) run(ctx context.Context, cmd string, args []string, key string) error {
	want := map[string]int{"status": 0, "pools": 0, "reload": 0, "servers": 1, "drain": 1, "enable": 1,
		"disable": 1, "checks": 1, "persistence": 1, "weight": 2}
	n, ok := want[cmd]
	if !ok {
		return exitError{code: 2, msg: fmt.Sprintf("fulcrum ctl: unknown command %q\n\n%s", cmd, ctlUsage)}
	}
	if len(args) != n {
		return exitError{code: 2, msg: fmt.Sprintf("fulcrum ctl %s: want %d argument(s), got %d\n\n%s", cmd, n, len(args), ctlUsage)}
	}
	switch cmd {
	case "status":
		return c.status(ctx)
	case "pools":
		return c.pools(ctx)
	case "reload":
		return c.show(ctx, http.MethodPost, "/api/v1/reload", nil, func(b []byte) error {
			_, err := fmt.Fprintln(c.out, "reloaded")
			return err
		})
	case "servers":
		return c.servers(ctx, args[0])
	case "persistence":
		return c.persistence(ctx, args[0], key)
	}
	p, s, err := splitServer(args[0])
	if err != nil {
		return err
	}
	path := "/api/v1/pools/" + url.PathEscape(p) + "/servers/" + url.PathEscape(s)
	switch cmd {
	case "checks":
		return c.checks(ctx, path)
	case "weight":
		w, err := strconv.Atoi(args[1])
		if err != nil {
			return exitError{code: 2, msg: fmt.Sprintf("fulcrum ctl weight: %q is not a number", args[1])}
		}
		return c.show(ctx, http.MethodPost, path+"/weight", map[string]int{"weight": w}, c.serverTable)
	}
	return c.show(ctx, http.MethodPost, path+"/"+cmd, nil, c.serverTable)
}

func splitServer(arg string) (string, string, error) {
	p, s, ok := strings.Cut(arg, "/")
	if !ok || p == "" || s == "" {
		return "", "", exitError{code: 2, msg: fmt.Sprintf("fulcrum ctl: %q: want POOL/SERVER", arg)}
	}
	return p, s, nil
}

// ctlError is the admin API's error, as it rendered it.
type ctlError struct {
	Status  int
	Msg     string
	Details []string
}

func (e *ctlError) Error() string {
	msg := e.Msg
	if len(e.Details) > 0 {
		msg += ": " + strings.Join(e.Details, "; ")
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// call sends one request and returns the body of a 2xx answer; any other
// answer becomes a *ctlError with the API's message.
func (c *ctl) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path, u.RawQuery = strings.TrimSuffix(c.base.Path, "/")+path[:i], path[i+1:]
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &ctlError{Status: resp.StatusCode, Msg: http.StatusText(resp.StatusCode)}
		var eb struct {
			Error   string   `json:"error"`
			Details []string `json:"details"`
		}
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			e.Msg, e.Details = eb.Error, eb.Details
		}
		return nil, e
	}
	return b, nil
}

// show calls the API and prints the answer raw (-o json) or through table.
func (c *ctl) show(ctx context.Context, method, path string, body any, table func([]byte) error) error {
	b, err := c.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	if c.json {
		_, err := c.out.Write(b)
		return err
	}
	return table(b)
}

// tab returns an aligned table writer; call Flush.
func (c *ctl) tab() *tabwriter.Writer {
	return tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
}

type ctlServer struct {
	Name     string    `json:"name"`
	Address  string    `json:"address"`
	Weight   int       `json:"weight"`
	State    string    `json:"state"`
	Since    time.Time `json:"since"`
	Active   int64     `json:"active"`
	Requests uint64    `json:"requests"`
	Failures uint64    `json:"failures"`
	Check    *struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	} `json:"check"`
	RPS       *float64 `json:"rps"`
	ErrorRate *float64 `json:"error_rate"`
	P50       *float64 `json:"p50_ms"`
	P99       *float64 `json:"p99_ms"`
}

type ctlPool struct {
	Name        string      `json:"name"`
	Balance     string      `json:"balance"`
	Persistence *int        `json:"persistence"`
	Servers     []ctlServer `json:"servers"`
}

var ctlStates = []string{"up", "dying", "down", "draining", "disabled"}

func (c *ctl) poolRows(tw io.Writer, pools []ctlPool) {
	fmt.Fprintln(tw, "POOL\tBALANCE\tSERVERS\tUP\tDYING\tDOWN\tDRAINING\tDISABLED")
	for _, p := range pools {
		n := map[string]int{}
		for _, s := range p.Servers {
			n[s.State]++
		}
		fmt.Fprintf(tw, "%s\t%s\t%d", p.Name, p.Balance, len(p.Servers))
		for _, st := range ctlStates {
			fmt.Fprintf(tw, "\t%d", n[st])
		}
		fmt.Fprintln(tw)
	}
}

func (c *ctl) pools(ctx context.Context) error {
	return c.show(ctx, http.MethodGet, "/api/v1/pools", nil, func(b []byte) error {
		var v struct{ Pools []ctlPool }
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding pools: %w", err)
		}
		tw := c.tab()
		c.poolRows(tw, v.Pools)
		return tw.Flush()
	})
}

func (c *ctl) status(ctx context.Context) error {
	return c.show(ctx, http.MethodGet, "/api/v1/snapshot", nil, func(b []byte) error {
		var v struct {
			Version   string `json:"version"`
			Listeners []struct {
				Name, Address, Protocol string
				Routes                  []struct{ Rule, Pool string }
			} `json:"listeners"`
			Pools []ctlPool `json:"pools"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding status: %w", err)
		}
		tw := c.tab()
		fmt.Fprintf(tw, "fulcrum %s\n\n", v.Version)
		fmt.Fprintln(tw, "LISTENER\tADDRESS\tPROTOCOL\tROUTES")
		for _, l := range v.Listeners {
			var rs []string
			for _, r := range l.Routes {
				rs = append(rs, r.Rule+" -> "+r.Pool)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Name, l.Address, l.Protocol, strings.Join(rs, ", "))
		}
		fmt.Fprintln(tw)
		c.poolRows(tw, v.Pools)
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "POOL/SERVER\tSTATE\tSINCE\tWEIGHT\tACTIVE\tREQ/S\tERRORS\tP50 MS\tP99 MS")
		for _, p := range v.Pools {
			for _, s := range p.Servers {
				fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", p.Name, s.Name, s.State, since(s.Since),
					s.Weight, s.Active, optNum(s.RPS, 1), optPct(s.ErrorRate), optNum(s.P50, 1), optNum(s.P99, 1))
			}
		}
		return tw.Flush()
	})
}

func (c *ctl) servers(ctx context.Context, poolName string) error {
	return c.show(ctx, http.MethodGet, "/api/v1/pools/"+url.PathEscape(poolName), nil, func(b []byte) error {
		var p ctlPool
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("decoding pool: %w", err)
		}
		tw := c.tab()
		serverHeader(tw)
		for _, s := range p.Servers {
			serverRow(tw, s)
		}
		return tw.Flush()
	})
}

func serverHeader(w io.Writer) {
	fmt.Fprintln(w, "SERVER\tADDRESS\tSTATE\tSINCE\tWEIGHT\tACTIVE\tREQUESTS\tFAILURES\tCHECK")
}

func serverRow(w io.Writer, s ctlServer) {
	check := "-"
	if s.Check != nil {
		check = "pass"
		if !s.Check.OK {
			check = "FAIL"
		}
		if s.Check.Reason != "" {
			check += ": " + s.Check.Reason
		}
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", s.Name, s.Address, s.State, since(s.Since),
		s.Weight, s.Active, s.Requests, s.Failures, check)
}

// serverTable prints the one server an action answers with.
func (c *ctl) serverTable(b []byte) error {
	var s ctlServer
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decoding server: %w", err)
	}
	tw := c.tab()
	serverHeader(tw)
	serverRow(tw, s)
	return tw.Flush()
}

func (c *ctl) checks(ctx context.Context, path string) error {
	return c.show(ctx, http.MethodGet, path+"/checks", nil, func(b []byte) error {
		var v struct {
			State         string `json:"state"`
			ReferenceHash string `json:"reference_hash"`
			Checks        []struct {
				OK         bool      `json:"ok"`
				At         time.Time `json:"at"`
				DurationMS float64   `json:"duration_ms"`
				Status     int       `json:"status"`
				Reason     string    `json:"reason"`
			} `json:"checks"`
			History []struct {
				At     time.Time `json:"at"`
				From   string    `json:"from"`
				To     string    `json:"to"`
				Reason string    `json:"reason"`
			} `json:"history"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding checks: %w", err)
		}
		tw := c.tab()
		fmt.Fprintf(tw, "keepalive state: %s\n", v.State)
		if v.ReferenceHash != "" {
			fmt.Fprintf(tw, "reference hash: sha256:%s\n", v.ReferenceHash)
		}
		fmt.Fprintln(tw, "\nAT\tVERDICT\tDURATION MS\tSTATUS\tREASON")
		for _, ch := range v.Checks {
			verdict := "pass"
			if !ch.OK {
				verdict = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\n", ch.At.Local().Format("15:04:05.000"), verdict, ch.DurationMS,
				optInt(ch.Status), ch.Reason)
		}
		if len(v.History) > 0 {
			fmt.Fprintln(tw, "\nCHANGED\tFROM\tTO\tREASON")
			for _, h := range v.History {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.At.Local().Format("2006-01-02 15:04:05"), h.From, h.To, h.Reason)
			}
		}
		return tw.Flush()
	})
}

func (c *ctl) persistence(ctx context.Context, poolName, key string) error {
	path := "/api/v1/pools/" + url.PathEscape(poolName) + "/persistence"
	if key != "" {
		return c.show(ctx, http.MethodGet, path+"?key="+url.QueryEscape(key), nil, func(b []byte) error {
			var e struct {
				Key      string `json:"key"`
				Server   string `json:"server"`
				LastSeen string `json:"last_seen"`
				Expires  string `json:"expires"`
			}
			if err := json.Unmarshal(b, &e); err != nil {
				return fmt.Errorf("decoding entry: %w", err)
			}
			tw := c.tab()
			fmt.Fprintln(tw, "KEY\tSERVER\tLAST SEEN\tEXPIRES")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Key, e.Server, e.LastSeen, e.Expires)
			return tw.Flush()
		})
	}
	return c.show(ctx, http.MethodGet, path, nil, func(b []byte) error {
		var v struct {
			Entries int            `json:"entries"`
			Servers map[string]int `json:"servers"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("decoding persistence: %w", err)
		}
		names := make([]string, 0, len(v.Servers))
		for n := range v.Servers {
			names = append(names, n)
		}
		slices.Sort(names)
		tw := c.tab()
		fmt.Fprintln(tw, "SERVER\tENTRIES")
		for _, n := range names {
			fmt.Fprintf(tw, "%s\t%d\n", n, v.Servers[n])
		}
		fmt.Fprintf(tw, "total\t%d\n", v.Entries)
		return tw.Flush()
	})
}

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String()
}

func optNum(v *float64, digits int) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', digits, 64)
}

func optPct(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64) + "%"
}

func optInt(v int) string {
	if v == 0 {
		return "-"
	}
	return strconv.Itoa(v)
}
