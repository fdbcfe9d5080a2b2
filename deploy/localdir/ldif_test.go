package localdir

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseLDIF(t *testing.T) {
	recs, err := parseLDIF("version: 1\n\n# comment\n continued comment\ndn: cn=a,dc=example,dc=com\nobjectClass: container\ncn: a\ndescription: long\n  line\n" +
		"msExchServerBindings:: OjI1Og==\n\n" +
		"dn: cn=a,dc=example,dc=com\nchangetype: modify\nreplace: description\ndescription: x\ndescription: y\n-\ndelete: cn\n-\n\n" +
		"dn: cn=a,dc=example,dc=com\nchangetype: modrdn\nnewrdn: cn=b\ndeleteoldrdn: 1\n\n" +
		"dn: cn=b,dc=example,dc=com\nchangetype: delete\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []record{
		{line: 5, dn: "cn=a,dc=example,dc=com", changeType: "add", attrs: []attr{
			{"objectClass", []string{"container"}}, {"cn", []string{"a"}}, {"description", []string{"long line"}}, {"msExchServerBindings", []string{":25:"}}}},
		{line: 12, dn: "cn=a,dc=example,dc=com", changeType: "modify", mods: []mod{
			{"replace", attr{"description", []string{"x", "y"}}}, {"delete", attr{"cn", nil}}}},
		{line: 21, dn: "cn=a,dc=example,dc=com", changeType: "modrdn", newRDN: "cn=b", deleteOld: true},
		{line: 26, dn: "cn=b,dc=example,dc=com", changeType: "delete"},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Errorf("got  %+v\nwant %+v", recs, want)
	}
}

func TestParseLDIFErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"cn: a\n", "line 1: a record must start with dn:"},
		{"dn: cn=a\nobjectClass container\n", "line 2"},
		{"dn: cn=a\nx:: !!!\n", "line 2: attribute x: bad base64"},
		{"dn: not a dn\ncn: a\n", "line 1: bad DN"},
		{"dn: cn=a\nchangetype: frobnicate\n", "unknown changetype"},
		{"dn: cn=a\nchangetype: modify\nreplace: cn\nsn: x\n", "line 4: dn cn=a: value of sn inside a change of cn"},
		{" cont\n", "line 1: continuation line"},
		{"dn: cn=a\n", "an entry needs attributes"},
		{"dn: cn=a\nphoto:< file:///etc/passwd\n", "URL values"},
	} {
		_, err := parseLDIF(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseLDIF(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

// FuzzParseLDIF checks that the LDIF reader never panics and that an entry
// written back for slapadd reads back the same.
func FuzzParseLDIF(f *testing.F) {
	f.Add("dn: cn=a,dc=example,dc=com\nobjectClass: container\ncn: a\n")
	f.Add("dn: cn=1,cn=x\nmsExchServerBindings:: OjI1Og==\nmsExchServerBindings: 127.0.0.1:25:\n\ndn: cn=1,cn=x\nchangetype: delete\n")
	f.Add("dn: cn=a\nchangetype: modify\nadd: x\nx: 1\n-\nreplace: y\n-\n")
	f.Add("# c\n c\ndn: cn=a\n b\nk: v\n  w\n")
	f.Fuzz(func(t *testing.T, in string) {
		recs, err := parseLDIF(in)
		if err != nil {
			return
		}
		for _, r := range recs {
			if r.changeType != "add" {
				continue
			}
			var b strings.Builder
			r.entryLDIF(&b)
			again, err := parseLDIF(b.String())
			if err != nil {
				t.Fatalf("written entry does not parse: %v\n%s", err, b.String())
			}
			if len(again) != 1 || again[0].dn != r.dn || !reflect.DeepEqual(again[0].attrs, r.attrs) {
				t.Fatalf("round trip changed the entry:\n%+v\n%+v", r, again)
			}
		}
	})
}
