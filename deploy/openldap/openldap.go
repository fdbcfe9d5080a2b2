// Package openldap holds ds2mb's OpenLDAP files: the Exchange schema generated
// from the schema catalogue (exchange.schema, slapd.conf include syntax) and
// the sample organisation (sample.ldif). Both are plain files in this folder,
// embedded here so that deploy/localdir and tools need no paths.
package openldap

import (
	_ "embed"
	"slices"
)

//go:embed exchange.schema
var exchangeSchema []byte

//go:embed sample.ldif
var sampleLDIF []byte

// Schema returns exchange.schema, the Exchange schema for slapd.conf's include.
func Schema() []byte { return slices.Clone(exchangeSchema) }

// SampleLDIF returns sample.ldif, the sample organisation rooted at
// dc=example,dc=com, as slapadd or ldapadd input.
func SampleLDIF() []byte { return slices.Clone(sampleLDIF) }
