package sinks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"testing"

	"github.com/ds2mb/ds2mb/smtpsvc/events"
)

const (
	confidential = "Confidential: for the addressee only."
	vertraulich  = "Vertraulich – nur für den Empfänger."
	marker       = "X-DS2MB-Disclaimer: added\r\n"
)

// The header the test messages share.
const head = `From: Ann Example <ann@contoso.example>
To: Bob <bob@fabrikam.example>
Subject: Q1 figures
Date: Tue, 04 Mar 2003 10:15:00 +0100
Message-ID: <q1.4711@contoso.example>
MIME-Version: 1.0
`

// smimeSigned is an Outlook-style S/MIME clear-signed message.
const smimeSigned = head + `Content-Type: multipart/signed;
	protocol="application/x-pkcs7-signature";
	micalg=SHA1;
	boundary="----=_NextPart_000_0007_01C2E246.5A3B2C10"

This is a multi-part message in MIME format.

------=_NextPart_000_0007_01C2E246.5A3B2C10
Content-Type: text/plain;
	charset="iso-8859-1"
Content-Transfer-Encoding: 7bit

The quarterly figures are attached.

------=_NextPart_000_0007_01C2E246.5A3B2C10
Content-Type: application/x-pkcs7-signature;
	name="smime.p7s"
Content-Transfer-Encoding: base64
Content-Disposition: attachment;
	filename="smime.p7s"

MIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUAzaIYutR6WS0YrSxo6jXYPDgVQ06n5FBt
w03pS+BWjb0Pu1HFtxumGOdZ0CfYjXMXlD2Kxr8Um/HhalCefzRAoW4peNXwjWwVTR3AKHC901Rg
zMeU/8Z1K09AzGD3CttoeIBdv7RM6LbZx/cYFu5YhYOxeyIeU8v6gZvNUd1QxX/K+2vbSxA3xhpE
dh+4/o7AAv+nZHe4D4oFqScK/u236Ih8c5nC7iZQKKW2D0MoUEQ8I3PrqqtRJol1vFhQK+eJyBYJ
YBnS6pARkhf3IIv/hfbxh48y06QKpiSPB/vh27O+tYFA6O5QdrP7+2x9hDHZqB1UaDqfOmJes6Sn
e55sHQf8LojxrNBvU6ghm6JBKuOR5mLAFCzMWYLkQjPjA57O6Ynl2LxmFVECEWHLr8Ld/qpSQwlR
XU+8/R+39Hgcp25skFW/nwXYHHVY6Vu4w7wm3QQ4ZoY/9DSKnrN/JGAE5+wT8MSNcCVAX6SoSC/t
+2bA1wfEtQfEwko2lPjN+n0QD7DYhHoAfUsUkoTgzFSahxIZB8MQ/gLqgRPb0S5Z2GY=

------=_NextPart_000_0007_01C2E246.5A3B2C10--

`

// pgpSignature is the armoured signature of the inline PGP samples.
const pgpSignature = `-----BEGIN PGP SIGNATURE-----

iQEzBAEBCAAdFiEEcvXGH+fbEaaCAKoXhIM45QpU9Wz0H27L2RC+oVdaX7l3RP98
qHra6g8HDKfb69lj5+J0gIzUZ6vR6nY3aGPBBMGf40GXqotjXoMZk7vZkAU8e5/m
20SBO935OPWBfBvcnTzQtFtkFLzIx+6J6i4+jM86LbII7CSNJtxJENgZHv78fkCY
=Pm2c
-----END PGP SIGNATURE-----
`

const inlinePGP = head + `Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA256

The meeting moves to 3 pm.
` + pgpSignature

const pdf = `JVBERi0xLjQKJeLjz9MKMSAwIG9iago8PCAvVHlwZSAvQ2F0YWxvZyA+PgplbmRvYmoKw1sh1so5
qnzDt5pwXZifGm6IuZq0OYjXQEh5nj25JqMMu4E27X8KStEO5b2DxykW/XhXbNDOgHqnKJoEgZ8j
qk+yYQWevV3qRC73jJuH8eOjrcgyremPw1yGvLx/EXXMi0myHOUxu7/8FBLzp30/nGKQ0cAJZvE2
SdooWkrFJGuTgmgeNdCLh/wcsCs8aZacrBzPJsxy+cPuk2jDEzSyM9zPTffYV4cTNwOLRbXBSNTa
WtGXTUbm6lYYlv+HjaFH6P6NRUr4JWs45JteZ9ntnZq285+i0gY5i/wG9a+vjVCRIPnGrmcRphhR
LSlS3Y2LCpLSoOrpziRYYHobeoXnUA==
`

func plain(charset, cte, body string) string {
	return head + "Content-Type: text/plain; charset=" + charset + "\nContent-Transfer-Encoding: " + cte + "\n\n" + body
}

// leaf is a body part of a message, decoded with the standard library.
type leaf struct {
	media  string
	params map[string]string
	header textproto.MIMEHeader
	text   string
}

// leaves lists the non-multipart parts of a message, depth first.
func leaves(t *testing.T, raw []byte) []leaf {
	t.Helper()
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("header: %v", err)
	}
	body, _ := io.ReadAll(r.R)
	return walk(t, h, body)
}

func walk(t *testing.T, h textproto.MIMEHeader, body []byte) []leaf {
	t.Helper()
	media, params := "text/plain", map[string]string{}
	if v := h.Get("Content-Type"); v != "" {
		var err error
		if media, params, err = mime.ParseMediaType(v); err != nil {
			t.Fatalf("Content-Type %q: %v", v, err)
		}
	}
	if strings.HasPrefix(media, "multipart/") {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		var out []leaf
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatalf("%s: %v", media, err)
			}
			b, _ := io.ReadAll(p)
			out = append(out, walk(t, textproto.MIMEHeader(p.Header), b)...)
		}
	}
	var rd io.Reader = bytes.NewReader(body)
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		rd = quotedprintable.NewReader(rd)
	case "base64":
		rd = base64.NewDecoder(base64.StdEncoding, rd)
	}
	dec, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("decoding %s: %v", media, err)
	}
	return []leaf{{media, params, h, string(dec)}}
}

// from returns b from the first s on; the test fails when there is none.
func from(t *testing.T, b []byte, s string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(s))
	if i < 0 {
		t.Fatalf("%q not in the message", s)
	}
	return b[i:]
}

func TestDisclaimer(t *testing.T) {
	r := testRegistry(t, Options{})
	def := map[string]string{"Text": confidential}
	utf := map[string]string{"Text": vertraulich}
	b64 := base64.StdEncoding.EncodeToString([]byte("Hallo Bob,\r\nschöne Grüße aus Köln.\r\n"))
	type check func(t *testing.T, in, out []byte, parts []leaf)
	cases := []struct {
		name       string
		props      map[string]string
		fromParams string
		msg        string
		same       bool // the message must pass byte for byte
		check      check
	}{
		{name: "plain 7bit", props: def, msg: plain("us-ascii", "7bit", "Hello Bob,\n\nsee you at noon.\n"),
			check: func(t *testing.T, in, out []byte, _ []leaf) {
				if want := marker + string(in) + "\r\n" + confidential + "\r\n"; string(out) != want {
					t.Errorf("got\n%q\nwant\n%q", out, want)
				}
			}},
		{name: "plain without a final line break", props: def, msg: plain("us-ascii", "7bit", "Hello Bob") + "\n",
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "Hello Bob\r\n\r\n"+confidential+"\r\n" {
					t.Errorf("text %q", p[0].text)
				}
			}},
		{name: "non-ASCII text turns us-ascii 7bit into utf-8 quoted-printable", props: utf, msg: plain("us-ascii", "7bit", "Hello Bob,\n\nsee you at noon.\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].params["charset"] != "utf-8" || p[0].header.Get("Content-Transfer-Encoding") != "quoted-printable" {
					t.Errorf("header %v", p[0].header)
				}
				if want := "Hello Bob,\r\n\r\nsee you at noon.\r\n\r\n" + vertraulich + "\r\n"; p[0].text != want {
					t.Errorf("text %q, want %q", p[0].text, want)
				}
				// Every other field as it was, in its place.
				if !bytes.HasPrefix(out, []byte(marker+string(rfc(head)))) {
					t.Errorf("header changed:\n%s", out)
				}
			}},
		{name: "quoted-printable part", props: utf, msg: plain("utf-8", "quoted-printable",
			"Gr=C3=BC=C3=9Fe aus K=C3=B6ln. Dies ist eine sehr lange Zeile, die weich umbr=\nochen wurde.\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if want := "Grüße aus Köln. Dies ist eine sehr lange Zeile, die weich umbrochen wurde.\r\n\r\n" + vertraulich + "\r\n"; p[0].text != want {
					t.Errorf("text %q, want %q", p[0].text, want)
				}
				if !bytes.Equal(out[len(marker):len(marker)+len(events.HeaderSection(in))], events.HeaderSection(in)) {
					t.Errorf("header changed:\n%s", out)
				}
				if !isASCII(out) {
					t.Error("8-bit bytes in a quoted-printable message")
				}
			}},
		{name: "base64 part", props: utf, msg: plain("utf-8", "base64", b64+"\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if want := "Hallo Bob,\r\nschöne Grüße aus Köln.\r\n\r\n" + vertraulich + "\r\n"; p[0].text != want {
					t.Errorf("text %q, want %q", p[0].text, want)
				}
				if p[0].header.Get("Content-Transfer-Encoding") != "base64" || p[0].params["charset"] != "utf-8" {
					t.Errorf("header %v", p[0].header)
				}
				for _, l := range strings.Split(string(splitEntity(out).body), "\r\n") {
					if len(l) > 76 {
						t.Errorf("base64 line of %d characters", len(l))
					}
				}
			}},
		{name: "8bit part in 8BITMIME mail stays 8bit", props: utf, fromParams: "SIZE=100 BODY=8BITMIME", msg: plain("utf-8", "8bit", "Grüße\n"),
			check: func(t *testing.T, in, out []byte, _ []leaf) {
				if want := marker + string(in) + "\r\n" + vertraulich + "\r\n"; string(out) != want {
					t.Errorf("got\n%q\nwant\n%q", out, want)
				}
			}},
		{name: "ASCII 8bit part in 7-bit mail becomes quoted-printable", props: utf, msg: plain("utf-8", "8bit", "Hello\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].header.Get("Content-Transfer-Encoding") != "quoted-printable" || !isASCII(out) {
					t.Errorf("header %v", p[0].header)
				}
			}},
		{name: "latin-1 part takes non-ASCII text in latin-1", props: map[string]string{"Text": "Nur für Sie."}, msg: plain("iso-8859-1", "7bit", "Gruss\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].params["charset"] != "iso-8859-1" || p[0].text != "Gruss\r\n\r\nNur f\xfcr Sie.\r\n" {
					t.Errorf("charset %s text %q", p[0].params["charset"], p[0].text)
				}
			}},
		{name: "shift_jis part cannot take non-ASCII text", props: utf, msg: plain("shift_jis", "7bit", "Hello\n"), same: true},
		{name: "shift_jis part takes ASCII text", props: def, msg: plain("shift_jis", "7bit", "Hello\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "Hello\r\n\r\n"+confidential+"\r\n" {
					t.Errorf("text %q", p[0].text)
				}
			}},
		{name: "no MIME fields at all", props: utf, msg: "From: a@x.example\nSubject: old style\n\nHi\n",
			check: func(t *testing.T, in, out []byte, p []leaf) {
				h := p[0].header
				if h.Get("MIME-Version") != "1.0" || h.Get("Content-Type") != "text/plain; charset=utf-8" || h.Get("Content-Transfer-Encoding") != "quoted-printable" {
					t.Errorf("header %v", h)
				}
				if p[0].text != "Hi\r\n\r\n"+vertraulich+"\r\n" {
					t.Errorf("text %q", p[0].text)
				}
			}},
		{name: "separator and line breaks", props: map[string]string{"Text": `Line one\nLine two`, "Separator": "-- "}, msg: plain("us-ascii", "7bit", "Hi\n"),
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "Hi\r\n\r\n-- \r\nLine one\r\nLine two\r\n" {
					t.Errorf("text %q", p[0].text)
				}
			}},
		{name: "html before </body>", props: def, msg: head + "Content-Type: text/html; charset=us-ascii\n\n<html><body><p>Hi Bob</p>\n</BODY></html>\n",
			check: func(t *testing.T, in, out []byte, _ []leaf) {
				want := marker + string(events.HeaderSection(in)) + "\r\n<html><body><p>Hi Bob</p>\r\n<p>" + confidential + "</p>\r\n</BODY></html>\r\n"
				if string(out) != want {
					t.Errorf("got\n%q\nwant\n%q", out, want)
				}
			}},
		{name: "html without </body>", props: map[string]string{"Text": "a < b & c"}, msg: head + "Content-Type: text/html\n\n<p>Hi</p>",
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "<p>Hi</p>\r\n<p>a &lt; b &amp; c</p>\r\n" {
					t.Errorf("text %q", p[0].text)
				}
			}},
		{name: "non-ASCII in html of another charset as character references", props: utf, msg: head + "Content-Type: text/html; charset=iso-8859-1\n\n<p>Hi</p>\n",
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "<p>Hi</p>\r\n<p>Vertraulich &#8211; nur f&#252;r den Empf&#228;nger.</p>\r\n" || p[0].header.Get("Content-Transfer-Encoding") != "" {
					t.Errorf("text %q header %v", p[0].text, p[0].header)
				}
			}},
		{name: "multipart/alternative: both parts", props: def, msg: head + `Content-Type: multipart/alternative; boundary="=_alt_42"

This is a multi-part message in MIME format.

--=_alt_42
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Hi Bob, the figures are in. Gr=C3=BC=C3=9Fe
--=_alt_42
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<html><body><p>Hi Bob, the figures are in. Gr=C3=BC=C3=9Fe</p></body></html>
--=_alt_42--
An epilogue.
`,
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if len(p) != 2 || p[0].text != "Hi Bob, the figures are in. Grüße\r\n\r\n"+confidential+"\r\n" ||
					p[1].text != "<html><body><p>Hi Bob, the figures are in. Grüße</p><p>"+confidential+"</p>\r\n</body></html>" {
					t.Errorf("parts %+v", p)
				}
				pre := bytes.Index(in, []byte("--=_alt_42\r\n"))
				if !bytes.Equal(out[len(marker):len(marker)+pre], in[:pre]) || !bytes.HasSuffix(out, []byte("\r\n--=_alt_42--\r\nAn epilogue.\r\n")) {
					t.Errorf("preamble or epilogue changed:\n%s", out)
				}
			}},
		{name: "html-only disclaimer in an alternative", props: map[string]string{"HTML": "<p><b>Confidential</b></p>"}, msg: head + `Content-Type: multipart/alternative; boundary=b

--b
Content-Type: text/plain

Hi
--b
Content-Type: text/html

<body>Hi</body>
--b--
`,
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "Hi" || p[1].text != "<body>Hi<p><b>Confidential</b></p>\r\n</body>" {
					t.Errorf("parts %q, %q", p[0].text, p[1].text)
				}
			}},
		{name: "html-only disclaimer leaves plain text alone", props: map[string]string{"HTML": "<p>x</p>"}, msg: plain("us-ascii", "7bit", "Hi\n"), same: true},
		{name: "multipart/mixed: alternative first, attachment identical", props: def, msg: head + `Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=us-ascii

Report attached.
--inner
Content-Type: text/html; charset=us-ascii

<p>Report attached.</p><img src="cid:logo">
--inner--

--rel
Content-Type: image/gif
Content-ID: <logo>
Content-Transfer-Encoding: base64

R0lGODlhAQABAAAAACw=
--rel--

--outer
Content-Type: application/pdf; name="q1.pdf"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="q1.pdf"

` + pdf + `--outer--
`,
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if len(p) != 4 || p[0].text != "Report attached.\r\n\r\n"+confidential+"\r\n" ||
					p[1].text != "<p>Report attached.</p><img src=\"cid:logo\">\r\n<p>"+confidential+"</p>\r\n" {
					t.Fatalf("parts %+v", p)
				}
				for _, tail := range []string{"\r\n--rel\r\nContent-Type: image/gif", "\r\n--outer\r\nContent-Type: application/pdf"} {
					if !bytes.Equal(from(t, out, tail), from(t, in, tail)) {
						t.Errorf("changed from %q on", tail)
					}
				}
			}},
		{name: "multipart/mixed: text first, a text attachment identical", props: def, msg: head + `Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/plain; charset=us-ascii
Content-Transfer-Encoding: 7bit

See the log.
--b1
Content-Type: text/plain; charset=us-ascii; name="build.log"
Content-Disposition: attachment; filename="build.log"

line 1
--b1--
`,
			check: func(t *testing.T, in, out []byte, p []leaf) {
				if p[0].text != "See the log.\r\n\r\n"+confidential+"\r\n" || p[1].text != "line 1" {
					t.Errorf("parts %q, %q", p[0].text, p[1].text)
				}
				if tail := "\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii; name="; !bytes.Equal(from(t, out, tail), from(t, in, tail)) {
					t.Error("the attachment changed")
				}
			}},
		{name: "multipart/mixed whose first part is an attachment", props: def, msg: head + "Content-Type: multipart/mixed; boundary=b\n\n--b\n" +
			"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n" + pdf + "--b\nContent-Type: text/plain\n\nhi\n--b--\n", same: true},
		{name: "S/MIME multipart/signed", props: def, msg: smimeSigned, same: true},
		{name: "S/MIME enveloped", props: def, msg: head + `Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="smime.p7m"

MIAGCSqGSIb3DQEHA6CAMIACAQAxggFOMIIBSgIBADCBsjCBrDELMAkGA1UEBhMCVVMxEzARBgNV
`, same: true},
		{name: "S/MIME opaque signed, old type", props: def, msg: head + "Content-Type: application/x-pkcs7-mime; smime-type=signed-data\n" +
			"Content-Transfer-Encoding: base64\n\nMIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUA\n", same: true},
		{name: "PGP/MIME encrypted", props: def, msg: head + `Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="pgp"

--pgp
Content-Type: application/pgp-encrypted

Version: 1
--pgp
Content-Type: application/octet-stream

-----BEGIN PGP MESSAGE-----

hQEMA3pqSgYbuBbtAQf/Zd4Z
-----END PGP MESSAGE-----
--pgp--
`, same: true},
		{name: "inline PGP signed", props: def, msg: inlinePGP, same: true},
		{name: "inline PGP in an alternative", props: def, msg: head + "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\n" +
			"-----BEGIN PGP MESSAGE-----\n\nhQEMA3pqSgYbuBbtAQf/Zd4Z\n-----END PGP MESSAGE-----\n--b\nContent-Type: text/html\n\n<pre>encrypted</pre>\n--b--\n", same: true},
		{name: "inline PGP inside base64", props: def, msg: plain("us-ascii", "base64",
			base64.StdEncoding.EncodeToString([]byte("-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhi\r\n"+pgpSignature))+"\n"), same: true},
		{name: "mixed whose first part is signed", props: def, msg: head + "Content-Type: multipart/mixed; boundary=wrap\n\n--wrap\n" +
			string(bytes.TrimPrefix([]byte(smimeSigned), []byte(head))) + "--wrap--\n", same: true},
		{name: "alternative with a signed alternative: the plain part is left too", props: def, msg: head + "Content-Type: multipart/alternative; boundary=alt\n\n" +
			"--alt\nContent-Type: text/plain\n\nHi\n--alt\n" + string(bytes.TrimPrefix([]byte(smimeSigned), []byte(head))) + "--alt--\n", same: true},
		{name: "delivery report", props: def, msg: head + `Content-Type: multipart/report; report-type=delivery-status; boundary=r

--r
Content-Type: text/plain

Your message could not be delivered.
--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.contoso.example
--r--
`, same: true},
		{name: "already has a disclaimer", props: def, msg: "X-DS2MB-Disclaimer: added\n" + plain("us-ascii", "7bit", "Hi\n"), same: true},
		{name: "multipart without its close delimiter", props: def, msg: head + "Content-Type: multipart/alternative; boundary=b\n\n--b\nContent-Type: text/plain\n\nHi\n", same: true},
		{name: "unknown transfer encoding", props: def, msg: plain("us-ascii", "x-uuencode", "begin 644 a\n"), same: true},
		{name: "broken base64", props: def, msg: plain("us-ascii", "base64", "!!!!\n"), same: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t, r, "ds2mb.Disclaimer", c.props)
			in := rfc(c.msg)
			ev := transportEvent("ann@contoso.example", []string{"bob@fabrikam.example"}, in)
			ev.Msg.FromParams = c.fromParams
			if res := s.Fire(context.Background(), ev); res != (events.Result{}) {
				t.Fatalf("result %+v", res)
			}
			out, _ := ev.Msg.Data()
			if c.same {
				if ev.Msg.Changed() || !bytes.Equal(out, in) {
					t.Fatalf("the message changed:\n%s", out)
				}
				return
			}
			if !ev.Msg.Changed() || !bytes.HasPrefix(out, []byte(marker)) {
				t.Fatalf("no disclaimer:\n%s", out)
			}
			c.check(t, in, out, leaves(t, out))
		})
	}
}

// Bound at two events, the disclaimer is added once; a failing load is
// the sink's error.
func TestDisclaimerOnce(t *testing.T) {
	r := testRegistry(t, Options{})
	var bs []events.Binding
	for i, ev := range []events.Type{events.Submission, events.PostCategorize} {
		bs = append(bs, events.Binding{Location: "/LM/SmtpSvc/1/EventManager/EventTypes/" + ev.CATID + "/Bindings/{" + string(rune('A'+i)) + "}",
			Event: ev, ID: string(rune('A' + i)), SinkClass: "ds2mb.Disclaimer", Enabled: true, Props: map[string]string{"Text": confidential}})
	}
	d, probs := events.Build(bs, events.Options{Registry: r, Logger: quiet})
	if len(probs) != 0 {
		t.Fatal(probs)
	}
	m := events.NewMailMsg("ann@contoso.example", []string{"bob@fabrikam.example"}, func() ([]byte, error) {
		return rfc(plain("us-ascii", "7bit", "Hi\n")), nil
	})
	d.RunTransport(context.Background(), 1, nil, m)
	out, _ := m.Data()
	if n := bytes.Count(out, []byte(confidential)); n != 1 {
		t.Errorf("%d disclaimers:\n%s", n, out)
	}

	s := newSink(t, r, "ds2mb.Disclaimer", map[string]string{"Text": confidential})
	ev := &events.Event{Type: events.StoreDriver, Msg: events.NewMailMsg("a@x", nil, func() ([]byte, error) { return nil, errors.New("spool gone") })}
	if res := s.Fire(context.Background(), ev); res.Err == nil || !strings.Contains(res.Err.Error(), "spool gone") {
		t.Errorf("result %+v", res)
	}
}

func TestSplitParts(t *testing.T) {
	body := []byte("pre\r\n--b \r\nA\r\n--bb\r\n--b\r\n\r\n--b\r\nC--b\r\n--b--\r\nepi")
	got, ok := splitParts(body, "b")
	var parts []string
	for _, r := range got {
		parts = append(parts, string(body[r[0]:r[1]]))
	}
	// "--bb" is not a delimiter of b; an empty part is one; "C--b" is text.
	if want := []string{"A\r\n--bb", "", "C--b"}; !ok || strings.Join(parts, "|") != strings.Join(want, "|") {
		t.Errorf("parts %q ok %v, want %q", parts, ok, want)
	}
	if _, ok := splitParts([]byte("--b\r\nA\r\n"), "b"); ok {
		t.Error("a body without its close delimiter split")
	}
}

func TestSetField(t *testing.T) {
	h := []byte("A: 1\r\nContent-Type: text/plain;\r\n\tcharset=us-ascii\r\nB: 2\r\n")
	if got := string(setField(h, "content-type", "text/plain; charset=utf-8")); got != "A: 1\r\nContent-Type: text/plain; charset=utf-8\r\nB: 2\r\n" {
		t.Errorf("replaced: %q", got)
	}
	if got := string(setField(h, "Content-Transfer-Encoding", "base64")); got != string(h)+"Content-Transfer-Encoding: base64\r\n" {
		t.Errorf("added: %q", got)
	}
}
