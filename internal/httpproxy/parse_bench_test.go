package httpproxy

import "testing"

var benchHead = []byte("GET /api/items?id=1 HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nCookie: FULCRUM=abc; ASP.NET_SessionId=xyz\r\nConnection: keep-alive\r\n\r\n")

func BenchmarkParseRequest(b *testing.B) {
	var r request
	b.ReportAllocs()
	b.SetBytes(int64(len(benchHead)))
	for b.Loop() {
		end := findHeadEnd(benchHead, 0)
		if err := parseRequest(benchHead[:end], &r); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseAllocs: parsing a head in place allocates nothing once the
// request's field slice has grown.
func TestParseAllocs(t *testing.T) {
	var r request
	end := findHeadEnd(benchHead, 0)
	parseRequest(benchHead[:end], &r)
	if n := testing.AllocsPerRun(100, func() {
		parseRequest(benchHead[:findHeadEnd(benchHead, 0)], &r)
	}); n != 0 {
		t.Fatalf("parseRequest allocates %.1f times per head, want 0", n)
	}
}
