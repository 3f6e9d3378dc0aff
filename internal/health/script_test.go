package health

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
)

// fakeSMTP greets with a multi-line banner and answers HELO with reply.
func fakeSMTP(heloReply string) func(net.Conn) {
	return func(c net.Conn) {
		c.Write([]byte("220-mail.example.com ESMTP\r\n"))
		c.Write([]byte("220 ready\r\n"))
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(l, "HELO"):
				c.Write([]byte(heloReply))
			case strings.HasPrefix(l, "QUIT"):
				c.Write([]byte("221 bye\r\n"))
				return
			}
		}
	}
}

func TestScriptSMTP(t *testing.T) {
	addr := serve(t, fakeSMTP("250 mail.example.com\r\n"))
	c := checkOne(t, addr, Options{Type: TypeScript, ScriptName: "smtp"}, 2)
	last, _ := c.Last()
	if c.State() != Up || !last.OK || last.Reason != "script passed (4 steps)" {
		t.Fatalf("got %s %q, want up with the script passed", c.State(), last.Reason)
	}
	if !strings.Contains(string(last.Sent), "HELO fulcrum\r\n") || !strings.HasPrefix(string(last.Received), "220-mail") {
		t.Errorf("got sent %q received %q", last.Sent, last.Received)
	}
}

func TestScriptRejectStep(t *testing.T) {
	addr := serve(t, fakeSMTP("250 error in configuration\r\n"))
	script := []Step{
		{Expect: re(`(?m)^220 `)},
		{Send: "HELO fulcrum\r\n"},
		{Expect: re(`(?m)^250`)},
		{Reject: re(`error`)},
		{Send: "QUIT\r\n"},
	}
	c := checkOne(t, addr, Options{Type: TypeScript, Script: script}, 1)
	eventually(t, "down", func() bool { return c.State() == Down })
	last, _ := c.Last()
	if want := "step 4: received text matched reject /error/"; !strings.HasPrefix(last.Reason, want) {
		t.Errorf("got reason %q, want %q", last.Reason, want)
	}
}

func TestScriptExpectTimesOut(t *testing.T) {
	addr := serve(t, func(c net.Conn) { c.Write([]byte("554 go away\r\n")); c.Read(make([]byte, 1)) })
	o := Options{Type: TypeScript, ScriptName: "smtp", Timeout: 50e6}.WithDefaults()
	r := Probe(context.Background(), nil, addr, o)
	if want := "step 1: timeout after 50ms waiting for /(?m)^220 /"; r.OK || !strings.HasPrefix(r.Reason, want) {
		t.Errorf("got %v %q, want a failure starting %q", r.OK, r.Reason, want)
	}
}

func TestScriptRedis(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if l, _ := br.ReadString('\n'); l == "PING\r\n" {
			c.Write([]byte("-LOADING Redis is loading the dataset in memory\r\n"))
		}
	})
	r := Probe(context.Background(), nil, addr, Options{Type: TypeScript, ScriptName: "redis"}.WithDefaults())
	if want := "step 3: received text matched reject"; r.OK || !strings.HasPrefix(r.Reason, want) {
		t.Errorf("got %v %q, want a failure starting %q", r.OK, r.Reason, want)
	}
}
