package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fulcrumlb/fulcrum/internal/httpproxy"
)

// browserRun is what browser/run.mjs prints.
type browserRun struct {
	Browser string             `json:"browser"`
	Pages   map[string]pageRun `json:"pages"`
}

// pageRun is one page: its checks' outcomes and what Chromium saw around them.
type pageRun struct {
	Status         int           `json:"status"`
	Result         pageResult    `json:"result"`
	Console        []consoleLine `json:"console"`
	FailedRequests []struct {
		Method string `json:"method"`
		URL    string `json:"url"`
		Error  string `json:"error"`
	} `json:"failedRequests"`
	Preflights []preflight `json:"preflights"`
	Screenshot string      `json:"screenshot"`
}

type consoleLine struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// preflight is a CORS preflight Chromium sent, seen through DevTools.
type preflight struct {
	URL             string            `json:"url"`
	Method          string            `json:"method"`
	Headers         map[string]string `json:"headers"`
	Status          int               `json:"status"`
	ResponseHeaders map[string]string `json:"responseHeaders"`
}

// pageResult is what window.fulcrumChecks returned (page/checks.js).
type pageResult struct {
	Origin string      `json:"origin"`
	Simple stepResult  `json:"simple"`
	Login  stepResult  `json:"login"`
	Put    stepResult  `json:"put"`
	XHR    stepResult  `json:"xhr"`
	WS     *stepResult `json:"ws"`
}

// stepResult is one step's outcome; which fields are set depends on the step.
type stepResult struct {
	OK          bool           `json:"ok"`
	Error       string         `json:"error"`
	Status      int            `json:"status"`
	Type        string         `json:"type"`
	ContentType string         `json:"contentType"`
	RequestID   *string        `json:"requestId"`
	Secret      *string        `json:"secret"`
	Body        map[string]any `json:"body"`
	Echoes      []struct {
		Kind  string `json:"kind"`
		Bytes int    `json:"bytes"`
		Same  bool   `json:"same"`
	} `json:"echoes"`
	Close *struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"close"`
}

// header looks a header up case-insensitively (DevTools keeps the case the
// server wrote).
func header(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// checkAllowed: from origin A every call works, reads its body, and the
// cookie set by the login comes back on the later calls; both preflights
// were answered 204 with the policy's headers.
func checkAllowed(t *testing.T, p pageRun, originA string, issued []string) {
	t.Helper()
	r := p.Result
	if p.Status != http.StatusOK || r.Origin != originA {
		t.Fatalf("allowed page: status %d, origin %q, want 200 from %q", p.Status, r.Origin, originA)
	}
	for _, s := range []struct {
		name string
		got  stepResult
	}{{"simple GET", r.Simple}, {"login POST", r.Login}, {"PUT", r.Put}, {"XHR GET", r.XHR}} {
		if !s.got.OK || s.got.Status != http.StatusOK || s.got.Body == nil {
			t.Errorf("allowed page, %s: %+v, want 200 and a JSON body read by the page", s.name, s.got)
		}
	}
	if r.Simple.Body["public"] != true || r.Simple.Type != "cors" {
		t.Errorf("allowed page, simple GET: body %v type %q, want public=true through a cors response", r.Simple.Body, r.Simple.Type)
	}
	if len(issued) == 0 || r.Login.Body["issued"] != issued[0] {
		t.Fatalf("allowed page, login: body %v, server issued %v", r.Login.Body, issued)
	}
	cookie := issued[0]
	want := map[string]any{"method": "PUT", "cookie": cookie, "header": "put", "contentType": "application/json", "body": `{"n":42,"text":"héllo"}`}
	for k, v := range want {
		if r.Put.Body[k] != v {
			t.Errorf("allowed page, PUT: the server saw %s = %v, want %v", k, r.Put.Body[k], v)
		}
	}
	// The policy's expose_headers replaced the server's own list.
	if r.Put.RequestID == nil || !strings.HasPrefix(*r.Put.RequestID, "req-") || r.Put.Secret != nil {
		t.Errorf("allowed page, PUT: the page read X-Request-Id %v and X-Secret %v, want the policy's exposed field only", deref(r.Put.RequestID), deref(r.Put.Secret))
	}
	if r.XHR.Body["cookie"] != cookie || r.XHR.Body["header"] != "xhr" {
		t.Errorf("allowed page, XHR: the server saw cookie %v header %v, want %q and \"xhr\"", r.XHR.Body["cookie"], r.XHR.Body["header"], cookie)
	}
	checkPreflights(t, "allowed", p.Preflights, http.StatusNoContent, originA)
	for _, c := range p.Console {
		if c.Type == "error" || c.Type == "pageerror" {
			t.Errorf("allowed page logged %s: %s", c.Type, c.Text)
		}
	}
	if len(p.FailedRequests) != 0 {
		t.Errorf("allowed page: failed requests %+v", p.FailedRequests)
	}
}

// checkPreflights: Chromium preflighted exactly the PUT and the XHR GET, and
// fulcrum answered each with status (and, when allowed, the policy headers).
func checkPreflights(t *testing.T, page string, got []preflight, status int, allowOrigin string) {
	t.Helper()
	paths := map[string]string{}
	for _, pf := range got {
		path := pf.URL
		if i := strings.Index(path, "/api/"); i >= 0 {
			path = path[i:]
		}
		paths[path] = header(pf.Headers, "Access-Control-Request-Method")
		if pf.Status != status {
			t.Errorf("%s page: preflight of %s answered %d, want %d", page, path, pf.Status, status)
		}
		if !strings.Contains(header(pf.ResponseHeaders, "Vary"), "Origin") {
			t.Errorf("%s page: preflight of %s: Vary %q, want Origin in it", page, path, header(pf.ResponseHeaders, "Vary"))
		}
		aco, acc := header(pf.ResponseHeaders, "Access-Control-Allow-Origin"), header(pf.ResponseHeaders, "Access-Control-Allow-Credentials")
		if status == http.StatusNoContent && (aco != allowOrigin || acc != "true") {
			t.Errorf("%s page: preflight of %s: Allow-Origin %q, Allow-Credentials %q, want %q and true", page, path, aco, acc, allowOrigin)
		}
		if status != http.StatusNoContent && (aco != "" || acc != "") {
			t.Errorf("%s page: refused preflight of %s carries CORS headers %q %q", page, path, aco, acc)
		}
	}
	if len(got) != 2 || paths["/api/item"] != "PUT" || paths["/api/whoami"] != "GET" {
		t.Errorf("%s page: preflights %+v, want one for PUT /api/item and one for GET /api/whoami", page, got)
	}
}

// checkDenied: from origin C the browser blocked every call and said why
// (CORS), and fulcrum refused both preflights.
func checkDenied(t *testing.T, p pageRun, originB string) {
	t.Helper()
	r := p.Result
	for _, s := range []struct {
		name, path string
		got        stepResult
	}{{"simple GET", "public", r.Simple}, {"login POST", "login", r.Login}, {"PUT", "item", r.Put}, {"XHR GET", "whoami", r.XHR}} {
		if s.got.OK {
			t.Errorf("denied page, %s: the page read %+v, want the browser to block it", s.name, s.got)
		}
		url := fmt.Sprintf("%s/api/%s", originB, s.path)
		// Chromium's own verdict; "no Allow-Origin header" also proves that
		// fulcrum dropped the server's "Access-Control-Allow-Origin: *"
		// (which would have let the uncredentialed simple GET through).
		if !consoleHas(p.Console, url, "blocked by CORS policy", "No 'Access-Control-Allow-Origin' header") {
			t.Errorf("denied page, %s: no console error saying %s was blocked by CORS policy for want of an Allow-Origin header; console: %+v", s.name, url, p.Console)
		}
	}
	checkPreflights(t, "denied", p.Preflights, http.StatusForbidden, "")
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return strconv.Quote(*s)
}

func consoleHas(lines []consoleLine, parts ...string) bool {
next:
	for _, l := range lines {
		for _, p := range parts {
			if !strings.Contains(l.Text, p) {
				continue next
			}
		}
		return true
	}
	return false
}

// checkAPIServerSaw: the API server never saw a preflight, saw every call
// from origin A once, and from origin C only the simple requests (which a
// browser sends without asking; it then hides the response from the page).
func checkAPIServerSaw(t *testing.T, seen []apiRequest, originA, originC string) {
	t.Helper()
	byOrigin := map[string][]string{}
	for _, r := range seen {
		if r.Method == http.MethodOptions {
			t.Errorf("the API server saw a preflight: %+v", r)
		}
		byOrigin[r.Origin] = append(byOrigin[r.Origin], r.Method+" "+r.Path)
	}
	want := map[string]string{
		originA: "GET /api/public, POST /api/login, PUT /api/item, GET /api/whoami",
		originC: "GET /api/public, POST /api/login",
	}
	for origin, w := range want {
		if got := strings.Join(byOrigin[origin], ", "); got != w {
			t.Errorf("the API server saw from %s: %s; want %s", origin, got, w)
		}
	}
	if len(byOrigin) != 2 {
		t.Errorf("the API server saw requests from %d origins, want 2: %v", len(byOrigin), byOrigin)
	}
}

// checkFulcrumAnswered: fulcrum's access log shows the preflights answered on
// listener b by fulcrum itself (no server), 204 for A and 403 for C.
func checkFulcrumAnswered(t *testing.T, f *fulcrum) {
	t.Helper()
	// A record is handed over just after its response is written: wait
	// until all four preflights are in.
	var records []httpproxy.AccessRecord
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		records = f.access()
		n := 0
		for _, r := range records {
			if r.Method == http.MethodOptions {
				n++
			}
		}
		if n >= 4 || time.Now().After(deadline) {
			break
		}
	}
	count := map[string]int{}
	for _, r := range records {
		if r.Method != http.MethodOptions {
			continue
		}
		if r.Server != "" || r.Listener != "b" {
			t.Errorf("preflight %s on listener %s went to server %q, want answered by fulcrum", r.Path, r.Listener, r.Server)
		}
		count[fmt.Sprintf("%s %d", r.Path, r.Status)]++
	}
	for _, k := range []string{"/api/item 204", "/api/whoami 204", "/api/item 403", "/api/whoami 403"} {
		if count[k] != 1 {
			t.Errorf("fulcrum answered %d preflights %q, want 1 (all: %v)", count[k], k, count)
		}
	}
}
