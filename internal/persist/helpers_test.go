package persist

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestCookieValue(t *testing.T) {
	tests := []struct {
		header, name, want string
		ok                 bool
	}{
		{"a=1; ASP.NET_SessionId=xyz", "ASP.NET_SessionId", "xyz", true},
		{"ASP.NET_SessionId=xyz", "ASP.NET_SessionId", "xyz", true},
		{"a=1;b=2", "b", "2", true},
		{"  a = 1 ;\tb=\"quoted\" ", "b", "quoted", true},
		{"a=1; b=2", "B", "", false}, // names are case-sensitive
		{"ab=1; b=2", "b", "2", true},
		{"b=first; b=second", "b", "first", true},
		{"b=; c=1", "b", "", false},
		{"b=\"\"", "b", "", false},
		{"novalue; b=x", "b", "x", true},
		{"b", "b", "", false},
		{"x=a=b", "x", "a=b", true},
		{"", "b", "", false},
		{"JSESSIONID=ABC.node1", "JSESSIONID", "ABC.node1", true},
	}
	for _, tt := range tests {
		got, ok := CookieValue([]byte(tt.header), tt.name)
		if string(got) != tt.want || ok != tt.ok {
			t.Errorf("CookieValue(%q, %q) = %q, %v; want %q, %v", tt.header, tt.name, got, ok, tt.want, tt.ok)
		}
	}
	h := []byte("a=1; ASP.NET_SessionId=xyz; c=3")
	if n := testing.AllocsPerRun(100, func() { CookieValue(h, "ASP.NET_SessionId") }); n != 0 {
		t.Errorf("CookieValue: %v allocations, want 0", n)
	}
}

func TestParseSetCookie(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header, want string
		act          CookieAction
	}{
		{"ASP.NET_SessionId=abc; path=/; HttpOnly; SameSite=Lax", "abc", CookieSet},
		{"ASP.NET_SessionId=\"abc\"", "abc", CookieSet},
		{"Other=abc; path=/", "", CookieOther},
		{"asp.net_sessionid=abc", "", CookieOther},
		{"garbage", "", CookieOther},
		{"ASP.NET_SessionId=abc; Max-Age=0", "", CookieDelete},
		{"ASP.NET_SessionId=abc; max-age=-1", "", CookieDelete},
		{"ASP.NET_SessionId=abc; Max-Age=3600", "abc", CookieSet},
		{"ASP.NET_SessionId=abc; Max-Age=bogus", "abc", CookieSet},
		{"ASP.NET_SessionId=; expires=Mon, 01 Jan 1990 00:00:00 GMT; path=/", "", CookieDelete},
		{"ASP.NET_SessionId=abc; expires=Thu, 01 Jan 1970 00:00:00 GMT", "", CookieDelete},
		{"ASP.NET_SessionId=abc; Expires=Thu, 01-Jan-1970 00:00:10 GMT", "", CookieDelete},
		{"ASP.NET_SessionId=abc; Expires=Thursday, 01-Jan-70 00:00:10 GMT", "", CookieDelete},
		{"ASP.NET_SessionId=abc; Expires=Wed, 01 Jan 2031 00:00:00 GMT", "abc", CookieSet},
		{"ASP.NET_SessionId=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", "abc", CookieSet}, // Max-Age wins
		{"ASP.NET_SessionId=abc; Expires=not a date", "abc", CookieSet},
		{"ASP.NET_SessionId=", "", CookieDelete},
	}
	for _, tt := range tests {
		got, act := ParseSetCookie([]byte(tt.header), "ASP.NET_SessionId", now)
		if string(got) != tt.want || act != tt.act {
			t.Errorf("ParseSetCookie(%q) = %q, %v; want %q, %v", tt.header, got, act, tt.want, tt.act)
		}
	}
	h := []byte("ASP.NET_SessionId=abc; path=/; HttpOnly; Max-Age=60")
	if n := testing.AllocsPerRun(100, func() { ParseSetCookie(h, "ASP.NET_SessionId", now) }); n != 0 {
		t.Errorf("ParseSetCookie without Expires: %v allocations, want 0", n)
	}
}

func TestSourceMask(t *testing.T) {
	tests := []struct {
		addr   string
		v4, v6 int
		want   string
	}{
		{"10.1.2.77", 32, 128, "10.1.2.77"},
		{"10.1.2.77", 24, 128, "10.1.2.0"},
		{"10.1.2.77", 16, 128, "10.1.0.0"},
		{"10.1.2.77", 0, 128, "0.0.0.0"},
		{"::ffff:10.1.2.77", 24, 128, "10.1.2.0"},
		{"2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::"},
		{"2001:db8:1:2:3:4:5:6", 24, 128, "2001:db8:1:2:3:4:5:6"},
		{"fe80::1%eth0", 32, 128, "fe80::1"},
		{"10.1.2.77", 99, 128, "10.1.2.77"}, // clamped
	}
	for _, tt := range tests {
		m := SourceMask{V4: tt.v4, V6: tt.v6}
		got := m.AppendKey(nil, netip.MustParseAddr(tt.addr))
		if string(got) != tt.want {
			t.Errorf("%+v.AppendKey(%s) = %q, want %q", m, tt.addr, got, tt.want)
		}
	}
	if got := DefaultSourceMask.AppendKey([]byte("x"), netip.Addr{}); string(got) != "x" {
		t.Errorf("invalid addr appended %q", got)
	}
	var buf [64]byte
	a := netip.MustParseAddr("2001:db8::1")
	if n := testing.AllocsPerRun(100, func() { SourceMask{24, 64}.AppendKey(buf[:0], a) }); n != 0 {
		t.Errorf("AppendKey: %v allocations, want 0", n)
	}
}

func TestURLSessionID(t *testing.T) {
	tests := []struct {
		mode, target, want string
	}{
		{"asp", "/(S(lit3py55t21z5v55vlm25s55))/default.aspx", "lit3py55t21z5v55vlm25s55"},
		{"asp", "/app/(S(abc))/page.aspx?x=1", "abc"},
		{"asp", "/(A(authticket)S(sess1)F(forms))/x.aspx", "sess1"},
		{"asp", "/(A(only))/x.aspx", ""},
		{"asp", "/(S())/x", ""},
		{"asp", "/(S(abc)/x", ""},
		{"asp", "/x.aspx?p=/(S(abc))/", ""}, // query is not path
		{"asp", "http://host:8080/(S(abc))/x.aspx", "abc"},
		{"asp", "https://host/app/(S(abc))/", "abc"},
		{"asp", "(S(rel))/page.aspx", "rel"},
		{"asp", "/(s(abc))/", ""},
		{"jsessionid", "/shop/cart.jsp;jsessionid=ABC123.node1?item=2", "ABC123.node1"},
		{"jsessionid", "/shop;JSESSIONID=ABC/cart", "ABC"},
		{"jsessionid", "/a;x=1;jsessionid=ABC;y=2", "ABC"},
		{"jsessionid", "/a?q=;jsessionid=ABC", ""},
		{"jsessionid", "/a;jsessionid=", ""},
		{"jsessionid", "http://h/a;jsessionid=LOC#frag", "LOC"},
		{"query:sid", "/a?x=1&sid=S1&sid=S2", "S1"},
		{"query:sid", "/a?sid=", ""},
		{"query:sid", "/a?xsid=1", ""},
		{"query:sid", "/a/sid=1", ""},
		{"query:sid", "/a?x=1#sid=2", ""},
		{"query:sid", "https://h/p?sid=LOC", "LOC"},
	}
	for _, tt := range tests {
		m, err := ParseURLMode(tt.mode)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := m.SessionID([]byte(tt.target))
		if string(got) != tt.want || ok != (tt.want != "") {
			t.Errorf("%s.SessionID(%q) = %q, %v; want %q", tt.mode, tt.target, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "query:", "ASP", "cookie"} {
		if _, err := ParseURLMode(bad); err == nil {
			t.Errorf("ParseURLMode(%q) succeeded", bad)
		}
	}
	m, _ := ParseURLMode("asp")
	target := []byte("/app/(A(xx)S(abc))/page.aspx?x=1")
	if n := testing.AllocsPerRun(100, func() { m.SessionID(target) }); n != 0 {
		t.Errorf("SessionID: %v allocations, want 0", n)
	}
}

func FuzzCookieValue(f *testing.F) {
	f.Add([]byte("a=1; ASP.NET_SessionId=xyz"), "ASP.NET_SessionId")
	f.Add([]byte(" b=\"q\" ;; =; c"), "b")
	f.Fuzz(func(t *testing.T, header []byte, name string) {
		v, ok := CookieValue(header, name)
		if ok != (len(v) > 0) {
			t.Fatalf("ok %v with value %q", ok, v)
		}
		if bytes.IndexByte(v, ';') >= 0 || !bytes.Contains(header, v) {
			t.Fatalf("value %q is not a ';'-free part of %q", v, header)
		}
		// A well-formed pair appended at the front is always found.
		if name != "" && isToken(name) && len(v) > 0 && bytes.IndexAny(v, "; \t\"") < 0 {
			got, _ := CookieValue(append([]byte(name+"="+string(v)+"; "), header...), name)
			if !bytes.Equal(got, v) {
				t.Fatalf("round trip: got %q, want %q", got, v)
			}
		}
	})
}

func FuzzParseSetCookie(f *testing.F) {
	now := time.Unix(1e9, 0)
	f.Add([]byte("JSESSIONID=abc; Path=/; Max-Age=0"))
	f.Add([]byte("JSESSIONID=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT"))
	f.Add([]byte("JSESSIONID=\"x\"; max-age=-99999999999999999999"))
	f.Fuzz(func(t *testing.T, v []byte) {
		val, act := ParseSetCookie(v, "JSESSIONID", now)
		switch act {
		case CookieSet:
			if len(val) == 0 || !bytes.Contains(v, val) || bytes.IndexByte(val, ';') >= 0 {
				t.Fatalf("set with value %q from %q", val, v)
			}
		case CookieOther, CookieDelete:
			if val != nil {
				t.Fatalf("action %v with value %q", act, val)
			}
		default:
			t.Fatalf("unknown action %v", act)
		}
	})
}

func FuzzURLSessionID(f *testing.F) {
	f.Add("asp", []byte("/(A(x)S(abc))/p.aspx"))
	f.Add("jsessionid", []byte("http://h/a;jsessionid=X?y"))
	f.Add("query:sid", []byte("/a?sid=1&b"))
	f.Fuzz(func(t *testing.T, mode string, target []byte) {
		m, err := ParseURLMode(mode)
		if err != nil {
			return
		}
		id, ok := m.SessionID(target)
		if ok != (len(id) > 0) || !bytes.Contains(target, id) || bytes.IndexAny(id, "?#") >= 0 && m.kind != urlQuery {
			t.Fatalf("%s.SessionID(%q) = %q, %v", mode, target, id, ok)
		}
	})
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte("()<>@,;:\\\"/[]?={}"), c) >= 0 {
			return false
		}
	}
	return true
}
