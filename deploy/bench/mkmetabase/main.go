// Command mkmetabase writes the MetaBase.xml the benchmarks run smtpsvc on:
// one virtual server on 127.0.0.1:PORT whose local domain is example.com,
// and optionally more domain nodes.
//
// With -smarthost the virtual server sends mail on instead: SmartHost is
// set (SmartHostType 2, always; RemoteSmtpPort from -remote-port) and
// example.com becomes a relay domain (SMTP_DOMAIN_RELAY), so a client on
// 127.0.0.1 may send to it and the queue routes it to the smart host. The
// server stays closed to other domains (no RelayIpList, no RelayForAuth).
//
//	mkmetabase -port 2725 -smarthost "[127.0.0.1]" -remote-port 2626 -out MetaBase.xml
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

// options are the flags.
type options struct {
	port       int    // of virtual server 1 on 127.0.0.1
	domains    int    // extra local domain nodes
	fqdn       string // FullyQualifiedDomainName
	maxConns   int    // MaxConnections; 0 = the catalogue default
	smartHost  string // SmartHost; "" = example.com is local
	remotePort int    // RemoteSmtpPort; 0 = the catalogue default
}

func main() {
	var o options
	flag.IntVar(&o.port, "port", 2725, "port of virtual server 1 on 127.0.0.1")
	out := flag.String("out", "MetaBase.xml", "file to write")
	flag.IntVar(&o.domains, "domains", 0, "extra local domain nodes")
	flag.StringVar(&o.fqdn, "fqdn", "smtpsvc.bench.test", "FullyQualifiedDomainName")
	flag.IntVar(&o.maxConns, "max-connections", 0, "MaxConnections (0 = the catalogue default)")
	flag.StringVar(&o.smartHost, "smarthost", "", `SmartHost of virtual server 1, e.g. "[127.0.0.1]": relay example.com to it (SmartHostType 2)`)
	flag.IntVar(&o.remotePort, "remote-port", 0, "RemoteSmtpPort of virtual server 1 (0 = the catalogue default, 25)")
	flag.Parse()
	if err := metabase.WriteFileAtomic(*out, build(o).Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mkmetabase:", err)
		os.Exit(1)
	}
}

// build makes the metabase the options describe.
func build(o options) *metabase.Tree {
	t := metabase.New()
	t.Version = 1
	t.Ensure(schema.ServiceLocation, metabase.ClassService)
	n := t.Ensure(schema.ServerLocation(1), metabase.ClassServer)
	n.Set("ServerBindings", fmt.Sprintf("127.0.0.1:%d:", o.port))
	n.Set("FullyQualifiedDomainName", o.fqdn)
	if o.maxConns > 0 {
		n.Set("MaxConnections", fmt.Sprint(o.maxConns))
	}
	if o.remotePort > 0 {
		n.Set("RemoteSmtpPort", fmt.Sprint(o.remotePort))
	}
	bench := schema.RouteAlias
	if o.smartHost != "" {
		n.Set("SmartHost", o.smartHost)
		n.Set("SmartHostType", "2")
		bench = schema.RouteDomainRelay
	}
	t.Ensure(schema.DomainLocation(1, "example.com"), metabase.ClassDomain).Set("RouteAction", fmt.Sprint(bench))
	for i := range o.domains {
		t.Ensure(schema.DomainLocation(1, fmt.Sprintf("d%d.example.org", i)), metabase.ClassDomain).Set("RouteAction", fmt.Sprint(schema.RouteAlias))
	}
	return t
}
