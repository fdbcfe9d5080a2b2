package schema_test

import (
	"fmt"

	"github.com/ds2mb/ds2mb/schema"
)

func ExampleParseBinding() {
	for _, s := range []string{":25:", "127.0.0.1:2525:mail.example.com", "[::1]:25:"} {
		b, err := schema.ParseBinding(s)
		fmt.Printf("%s listens on %s for host %q (%v)\n", s, b.Addr(), b.Host, err)
	}
	// Output:
	// :25: listens on :25 for host "" (<nil>)
	// 127.0.0.1:2525:mail.example.com listens on 127.0.0.1:2525 for host "mail.example.com" (<nil>)
	// [::1]:25: listens on [::1]:25 for host "" (<nil>)
}

func ExampleParseRetryList() {
	fmt.Println(schema.ParseRetryList("15,30,60,240"))
	_, err := schema.ParseRetryList("15,,60")
	fmt.Println(err)
	// Output:
	// [15 30 60 240] <nil>
	// retry list "15,,60": "" is not 1–10080 minutes
}

func ExampleParseSmartHost() {
	hs, _ := schema.ParseSmartHost("[127.0.0.1]:2525")
	fmt.Println(hs[0].Literal(), hs[0].IP, hs[0].Port)
	_, err := schema.ParseSmartHost("10.0.0.1")
	fmt.Println(err)
	// Output:
	// true 127.0.0.1 2525
	// smart host "10.0.0.1": IP address 10.0.0.1 must be written in brackets, [10.0.0.1]
}

func ExampleProperty_FromDirectory() {
	p, _ := schema.ForAttribute("msExchSmtpMaxMessageSize")
	v, err := p.FromDirectory([]string{"10485760"})
	fmt.Println(p.Name, p.Render(v), err)
	p, _ = schema.ForAttribute("msExchSmtpMaxRecipients")
	_, err = p.FromDirectory([]string{"-5"})
	fmt.Println(p.Name, err)
	// Output:
	// MaxMessageSize 10485760 <nil>
	// MaxRecipients -5 is out of range 0–4294967295
}

func ExampleParseValue() {
	auth, _ := schema.Lookup("AuthFlags")
	v, _ := schema.ParseValue(schema.DWORD, "AuthBasic | AuthAnonymous | AuthNTLM", auth.Symbols)
	fmt.Println(v.DWord)
	v, _ = schema.ParseValue(schema.DWORD, "-1", nil)
	fmt.Println(v.DWord)
	// Output:
	// 7
	// 4294967295
}

func ExampleClassify() {
	for _, loc := range []string{
		"/LM/SmtpSvc",
		"/LM/SmtpSvc/1",
		"/LM/SmtpSvc/1/Domain/example.com",
		"/LM/SmtpSvc/1/EventManager/EventTypes/{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}/Bindings/{6B2E1D5A-3F4C-4E8B-9A7D-1C2B3E4F5A60}/SourceProperties",
		"/LM/W3SVC/1",
	} {
		p, err := schema.Classify(loc)
		fmt.Println(p.Kind, p.Instance, p.Domain, err)
	}
	// Output:
	// service 0  <nil>
	// server 1  <nil>
	// domain 1 example.com <nil>
	// binding-source 1  <nil>
	// unknown 0  <nil>
}
