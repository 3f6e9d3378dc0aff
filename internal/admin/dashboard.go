package admin

import (
	"embed"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ui holds the dashboard: plain HTML, CSS and JavaScript modules, served
// as they are (no build step, nothing from a CDN).
//
//go:embed ui
var ui embed.FS

// csp allows the dashboard's own files and nothing else: no inline script
// or style, no frames, no other origin to talk to.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var loginPage = template.Must(template.ParseFS(ui, "ui/login.html"))

// public reports whether a request may be served without the token: the
// health check, the login form and the one style sheet it uses.
func public(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/login", "/ui/style.css":
		return true
	}
	return false
}

// browserNavigation reports whether r is a browser loading a page (rather
// than a script reading the API): it is answered with the login form
// instead of a 401.
func browserNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	if r.URL.Path == "/" {
		return true
	}
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" && !strings.HasPrefix(r.URL.Path, "/api/")
}

func (s *Server) dashboardRoutes() {
	static, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(static)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	s.mux.Handle("GET /ui/", http.StripPrefix("/ui/", files))
	s.mux.HandleFunc("GET /login", s.loginForm)
	s.mux.HandleFunc("POST /login", s.login)
	s.mux.HandleFunc("POST /logout", s.logout)
	s.mux.HandleFunc("GET /api/v1/events", s.events)
	s.mux.HandleFunc("GET /api/v1/snapshot", s.snapshotOnce)
	s.mux.HandleFunc("GET /api/v1/pools/{pool}/servers/{server}/detail", s.detail)
	s.mux.HandleFunc("GET /api/v1/session", s.sessionInfo)
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if s.auth == nil || s.allowed(r) {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.renderLogin(w, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, map[string]string{"Error": msg})
}

// login trades the token (form field "token") for a session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.auth == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, "Could not read the form.")
		return
	}
	if !s.auth.matches(r.PostForm.Get("token")) {
		s.log.Warn("admin: login refused", "remote", r.RemoteAddr)
		s.renderLogin(w, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	value, expires := s.sessions.issue()
	http.SetCookie(w, sessionCookieFor(r, value, expires))
	s.log.Info("admin: browser logged in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if s.sessions != nil {
		s.sessions.end(r)
	}
	http.SetCookie(w, sessionCookieFor(r, "", time.Time{}))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// sessionInfo tells the dashboard whether it runs behind a login (to show
// the logout button).
func (s *Server) sessionInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]bool{"auth": s.auth != nil,
		"cookie": s.sessions != nil && s.sessions.allows(r)})
}

// allowed reports whether r carries the bearer token or a session cookie.
func (s *Server) allowed(r *http.Request) bool {
	return s.auth == nil || s.auth.allows(r) || s.sessions.allows(r)
}

// hostAllowed guards against DNS rebinding: a page on another site whose
// name was made to resolve to this listener sends its own name as Host. IP
// literals cannot be rebound, loopback names only reach this machine, and
// the machine's own name and Options.Hosts are the operator's.
func (s *Server) hostAllowed(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	host = strings.TrimSuffix(host, ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	_, ok := s.hosts[host]
	return ok
}
