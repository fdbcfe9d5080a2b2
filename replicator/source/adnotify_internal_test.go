package source

import (
	"encoding/hex"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestPlainDN: AD's extended DN form is reduced to the DN; other values,
// including ones that merely start with "<", are kept.
func TestPlainDN(t *testing.T) {
	for in, want := range map[string]string{
		"<GUID=b277a119-9bce-4c4d-8b5a-0123456789ab>;CN=1,CN=SMTP,DC=example,DC=test":                "CN=1,CN=SMTP,DC=example,DC=test",
		"<GUID=b277a119-9bce-4c4d-8b5a-0123456789ab>;<SID=S-1-5-21-1-2-3-500>;CN=Administrator,DC=x": "CN=Administrator,DC=x",
		"CN=plain,DC=x":      "CN=plain,DC=x",
		"<not a dn> at all":  "<not a dn> at all",
		"<GUID=unterminated": "<GUID=unterminated",
		"":                   "",
	} {
		if got := plainDN(in); got != want {
			t.Errorf("plainDN(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGUIDOf: objectGUID's first three fields are little-endian
// (DIRECTORIES.md §4: bytes 19a177b2ce9b4d4c… are b277a119-9bce-4c4d-…).
func TestGUIDOf(t *testing.T) {
	raw, _ := hex.DecodeString("19a177b2ce9b4d4c8b5a0123456789ab")
	e := &ldap.Entry{Attributes: []*ldap.EntryAttribute{{Name: "objectGUID", ByteValues: [][]byte{raw}}}}
	if got, want := guidOf(e), "b277a119-9bce-4c4d-8b5a-0123456789ab"; got != want {
		t.Fatalf("guidOf = %s, want %s", got, want)
	}
	if got := guidOf(&ldap.Entry{}); got != "" {
		t.Fatalf("guidOf without objectGUID = %q, want empty", got)
	}
}

// TestTombstone: isDeleted or the \0ADEL: mark of a deleted object's DN.
func TestTombstone(t *testing.T) {
	del := &ldap.Entry{DN: `CN=7\0ADEL:b277a119-9bce-4c4d-8b5a-0123456789ab,CN=Deleted Objects,CN=Configuration,DC=x`}
	flag := &ldap.Entry{DN: "CN=7,DC=x", Attributes: []*ldap.EntryAttribute{{Name: "isDeleted", Values: []string{"TRUE"}}}}
	live := &ldap.Entry{DN: "CN=7,DC=x"}
	if !isTombstone(del) || !isTombstone(flag) || isTombstone(live) {
		t.Fatalf("isTombstone: ADEL %v, isDeleted %v, live %v", isTombstone(del), isTombstone(flag), isTombstone(live))
	}
}
