package schema

import (
	"bytes"
	"strings"
	"testing"
)

// The fuzz targets run on their seed corpus in every go test; make fuzz
// (deploy/fuzz-all.sh) explores further. Each checks that the parser never
// panics and that what it accepts survives a round trip through its own
// output.

func FuzzParseBinding(f *testing.F) {
	for _, s := range []string{":25:", "127.0.0.1:2525:mail.example.com", "[::1]:25:", "127.0.0.1:465", "10.0.0.1:99999:",
		"[::1:25:", "[fe80::1%eth0]:25:", ":25:*.example.com", "[::ffff:127.0.0.1]:025:", "", ":", "::", "[]:25:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBinding(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParseBinding(%q): empty error", s)
			}
			return
		}
		if b.Port == 0 {
			t.Fatalf("ParseBinding(%q) accepted port 0", s)
		}
		again, err := ParseBinding(b.String())
		if err != nil || again != b {
			t.Fatalf("ParseBinding(%q) = %+v; its String %q parses to %+v, %v", s, b, b.String(), again, err)
		}
	})
}

func FuzzParseRetryList(f *testing.F) {
	for _, s := range []string{"15,30,60,240", "10,10,10,15", "15,,60", "", "5", "0", "1,2,3,4,5,6,7,8,9", " 10 , 20 ", "10081", "-1", "+5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseRetryList(s)
		if err != nil {
			return
		}
		if len(l) < 1 || len(l) > 8 {
			t.Fatalf("ParseRetryList(%q) = %v: %d entries", s, l, len(l))
		}
		parts := make([]string, len(l))
		for i, n := range l {
			if n < 1 || n > 10080 {
				t.Fatalf("ParseRetryList(%q) = %v: %d out of range", s, l, n)
			}
			parts[i] = Value{Type: DWORD, DWord: n}.Text()
		}
		again, err := ParseRetryList(strings.Join(parts, ","))
		if err != nil || len(again) != len(l) {
			t.Fatalf("ParseRetryList(%q) = %v does not survive re-joining: %v, %v", s, l, again, err)
		}
		for i := range l {
			if again[i] != l[i] {
				t.Fatalf("ParseRetryList(%q) = %v, re-joined %v", s, l, again)
			}
		}
	})
}

func FuzzParseSmartHost(f *testing.F) {
	for _, s := range []string{"smarthost.example.net", "[10.0.0.1]", "[127.0.0.1]:2525", "10.0.0.1", "[10.0.0.1", "a.example.com;[127.0.0.1],b.example.com",
		"host:0", "[::1]", "[fe80::1%eth0]:25", "", ";", "[]", "[1.2.3.4]:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hs, err := ParseSmartHost(s)
		if err != nil {
			return
		}
		if len(hs) == 0 {
			t.Fatalf("ParseSmartHost(%q) accepted no host", s)
		}
		for _, h := range hs {
			if h.Literal() == (h.Host != "") {
				t.Fatalf("ParseSmartHost(%q): %+v is both or neither a name and a literal", s, h)
			}
			if h.Host != "" {
				if err := CheckDomain(h.Host); err != nil {
					t.Fatalf("ParseSmartHost(%q) accepted host %q: %v", s, h.Host, err)
				}
			}
		}
	})
}

func FuzzDecodeIPSecList(f *testing.F) {
	f.Add(ipsecBlob127())
	f.Add([]byte{})
	f.Add(make([]byte, 80))
	if b, err := EncodeIPSecList(IPSecList{}); err == nil {
		f.Add(b)
	}
	f.Add(append(ipsecBlob127(), 10, 0, 0, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeIPSecList(b)
		if err != nil {
			return
		}
		enc, err := EncodeIPSecList(l)
		if err != nil {
			t.Fatalf("decoded %v from % x but cannot encode it: %v", l.Grant, b, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("decode→encode changed the blob:\n% x\n% x", b, enc)
		}
		again, err := DecodeIPSecList(enc)
		if err != nil || len(again.Grant) != len(l.Grant) {
			t.Fatalf("decode→encode→decode: %v, %v (first %v)", again.Grant, err, l.Grant)
		}
		for i := range l.Grant {
			if again.Grant[i] != l.Grant[i] {
				t.Fatalf("decode→encode→decode: %v, first %v", again.Grant, l.Grant)
			}
		}
	})
}

func FuzzParseRule(f *testing.F) {
	for _, s := range []string{"EHLO=*.contoso.com;MAIL FROM=*@x.com", "mail from=*@contoso.com;rcpt to=*@example.com", "", ";;", "FOO=bar", "EHLO", "EHLO=",
		"rcpt   to = *", "RCPT TO=a=b", "=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseRule(s)
		if err != nil {
			return
		}
		parts := make([]string, len(cs))
		for i, c := range cs {
			switch c.Command {
			case "EHLO", "HELO", "MAIL FROM", "RCPT TO":
			default:
				t.Fatalf("ParseRule(%q) accepted command %q", s, c.Command)
			}
			if c.Pattern == "" {
				t.Fatalf("ParseRule(%q) accepted an empty pattern", s)
			}
			parts[i] = c.Command + "=" + c.Pattern
		}
		again, err := ParseRule(strings.Join(parts, ";"))
		if err != nil || len(again) != len(cs) {
			t.Fatalf("ParseRule(%q) = %v does not survive re-joining: %v, %v", s, cs, again, err)
		}
		for i := range cs {
			if again[i] != cs[i] {
				t.Fatalf("ParseRule(%q) = %v, re-joined %v", s, cs, again)
			}
		}
	})
}

func FuzzParseValue(f *testing.F) {
	auth, _ := Lookup("AuthFlags")
	for _, c := range []struct {
		typ  uint8
		text string
	}{
		{uint8(DWORD), "AuthBasic | AuthAnonymous | AuthNTLM"}, {uint8(DWORD), "TRUE"}, {uint8(DWORD), "0x10"}, {uint8(DWORD), "-1"},
		{uint8(DWORD), "4294967296"}, {uint8(DWORD), "1 |"}, {uint8(MULTISZ), "\n\t:25:\n\t127.0.0.1:2525:\n"},
		{uint8(BINARY), "0a ff 00"}, {uint8(BINARY), "xyz"}, {uint8(STRING), "15,30,60,240"}, {uint8(EXPANDSZ), `%windir%\x`},
	} {
		f.Add(c.typ, c.text)
	}
	f.Fuzz(func(t *testing.T, typ uint8, text string) {
		mt := MDType(typ%5 + 1)
		v, err := ParseValue(mt, text, auth.Symbols)
		if err != nil {
			return
		}
		if v.Type != mt {
			t.Fatalf("ParseValue(%v, %q) gave type %v", mt, text, v.Type)
		}
		again, err := ParseValue(mt, v.Text(), auth.Symbols)
		if err != nil || !again.Equal(v) {
			t.Fatalf("ParseValue(%v, %q) = %v; its Text %q parses to %v, %v", mt, text, v, v.Text(), again, err)
		}
	})
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"/LM/SmtpSvc", "/LM/SmtpSvc/1", "/LM/SmtpSvc/2/Domain/Example.COM", "/LM/SmtpSvc/1/RoutingSources", "/LM/W3SVC/1",
		"/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/{6B2E1D5A-3F4C-4E8B-9A7D-1C2B3E4F5A60}/SourceProperties",
		"/LM/SmtpSvc/01", "/LM/SmtpSvc/0", "/LM/SmtpSvc/1/Domain/a/b", "", "/", "/LM/SmtpSvc/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, loc string) {
		p, err := Classify(loc)
		if err != nil {
			if !strings.Contains(err.Error(), loc) {
				t.Fatalf("Classify(%q): error %q does not name the Location", loc, err)
			}
			return
		}
		var again string
		switch p.Kind {
		case NodeServer:
			again = ServerLocation(p.Instance)
		case NodeDomain:
			again = DomainLocation(p.Instance, p.Domain)
		case NodeBinding:
			again = BindingLocation(p.Instance, p.Event, p.Binding)
		default:
			return
		}
		q, err := Classify(again)
		if err != nil || q != p {
			t.Fatalf("Classify(%q) = %+v; rebuilt %q classifies as %+v, %v", loc, p, again, q, err)
		}
	})
}
