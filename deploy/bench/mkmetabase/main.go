// Command mkmetabase writes the MetaBase.xml the benchmarks run smtpsvc on:
// one virtual server on 127.0.0.1:PORT whose local domain is example.com,
// and optionally more domain nodes.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

func main() {
	port := flag.Int("port", 2725, "port of virtual server 1 on 127.0.0.1")
	out := flag.String("out", "MetaBase.xml", "file to write")
	domains := flag.Int("domains", 0, "extra local domain nodes")
	fqdn := flag.String("fqdn", "smtpsvc.bench.test", "FullyQualifiedDomainName")
	maxConns := flag.Int("max-connections", 0, "MaxConnections (0 = the catalogue default)")
	flag.Parse()
	t := metabase.New()
	t.Version = 1
	t.Ensure(schema.ServiceLocation, metabase.ClassService)
	n := t.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	n.Set("ServerBindings", fmt.Sprintf("127.0.0.1:%d:", *port))
	n.Set("FullyQualifiedDomainName", *fqdn)
	if *maxConns > 0 {
		n.Set("MaxConnections", fmt.Sprint(*maxConns))
	}
	t.Ensure(schema.DomainLocation(1, "example.com"), metabase.ClassDomain).Set("RouteAction", "16")
	for i := range *domains {
		t.Ensure(schema.DomainLocation(1, fmt.Sprintf("d%d.example.org", i)), metabase.ClassDomain).Set("RouteAction", "16")
	}
	if err := metabase.WriteFileAtomic(*out, t.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mkmetabase:", err)
		os.Exit(1)
	}
}
