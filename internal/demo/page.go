package demo

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/fulcrumlb/fulcrum/session"
)

// trailLen is how many of the last servers a session remembers.
const trailLen = 10

// visit is what a page shows.
type visit struct {
	Server  string
	Hits    int64    // requests this server answered
	Visits  int      // visits of this session, on any server
	Trail   []string // the servers that answered this session, oldest first
	Client  string
	Path    string
	Roaming bool // reached through /roam/ (no persistence)
}

// page counts a visit in the session: a read-write handler, so the session
// is locked while it runs and concurrent visits never lose a count.
func (a *App) page(w http.ResponseWriter, r *http.Request) {
	s := session.From(r.Context())
	visits, _, err1 := session.Get[int](s, "visits")
	trail, _, err2 := session.Get[[]string](s, "servers")
	if err1 != nil || err2 != nil { // a session some other code wrote: start over
		s.Clear()
		visits, trail = 0, nil
	}
	visits++
	trail = append(trail, a.Name)
	if len(trail) > trailLen {
		trail = trail[len(trail)-trailLen:]
	}
	if err := s.Set("visits", visits); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := s.Set("servers", trail); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	a.render(w, r, visit{Server: a.Name, Hits: a.hits.Add(1), Visits: visits, Trail: trail})
}

// peek shows the session without counting: a read-only handler, which
// takes no lock.
func (a *App) peek(w http.ResponseWriter, r *http.Request) {
	s := session.From(r.Context())
	visits, _, _ := session.Get[int](s, "visits")
	trail, _, _ := session.Get[[]string](s, "servers")
	a.render(w, r, visit{Server: a.Name, Hits: a.hits.Add(1), Visits: visits, Trail: trail})
}

func (a *App) render(w http.ResponseWriter, r *http.Request, v visit) {
	v.Client, v.Path = r.Header.Get("X-Forwarded-For"), r.URL.Path
	v.Roaming = strings.HasPrefix(r.URL.Path, "/roam")
	h := w.Header()
	h.Set("X-Served-By", v.Server)
	h.Set("X-Session-Visits", strconv.Itoa(v.Visits))
	h.Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		h.Set("Content-Type", "text/html; charset=utf-8")
		if err := pageHTML.Execute(w, v); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello from %s (request %d on this server)\n", v.Server, v.Hits)
	fmt.Fprintf(w, "Visits in this session: %d (kept in the state service: every server sees the same count)\n", v.Visits)
	fmt.Fprintf(w, "Servers that answered this session, oldest first: %s\n", strings.Join(v.Trail, " "))
	fmt.Fprintf(w, "You are %s as seen through X-Forwarded-For; path %s\n", v.Client, v.Path)
}

var pageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Server}} · fulcrum demo</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;color:#222}
.big{font-size:2.4em;font-weight:700;margin:.2em 0}
.srv{display:inline-block;padding:.1em .5em;margin:.1em;border-radius:.3em;background:#e4ecf7}
a{color:#2b6cb0}
</style></head><body>
<p>Hello from</p>
<p class="big">{{.Server}}</p>
<p>Visits in this session: <strong class="big">{{.Visits}}</strong></p>
<p>Servers that answered this session, oldest first:<br>
{{range $i, $s := .Trail}}<span class="srv">{{$s}}</span>{{end}}</p>
<p>The counter lives in fulcrum's <em>state service</em>, not in any server, so it keeps
counting whichever server answers.</p>
<ul>
<li><a href="/roam/">/roam/</a>: <strong>no persistence</strong>; round robin sends every
request to the next server. Reload and watch the server change while the count goes on.</li>
<li><a href="/">/</a>: <strong>cookie persistence</strong>; the balancer keeps you on one
server (its sealed FULCRUM cookie).</li>
<li><a href="{{if .Roaming}}/roam/peek{{else}}/peek{{end}}">peek</a>: a read-only page;
it shows the count without locking or changing the session.</li>
</ul>
<p><small>request {{.Hits}} on {{.Server}} · you are {{.Client}} · path {{.Path}}</small></p>
</body></html>
`))
