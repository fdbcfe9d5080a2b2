// Command localdir runs the local directory of the quick start: a private
// slapd with the Exchange schema and the sample organisation, on a loopback
// port. It prints the URL, the bind DNs and passwords and the sample tree,
// and runs until interrupted (Ctrl-C, SIGTERM).
//
//	go run ./deploy/cmd/localdir [-port 3890] [-dir .demo/ldap] [-fresh] [-ready FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ds2mb/ds2mb/deploy/localdir"
)

func main() {
	var (
		o     localdir.Options
		fresh = flag.Bool("fresh", false, "remove -dir first, so the sample is loaded again")
		ready = flag.String("ready", "", "write the URL to this file once the directory accepts binds")
		quiet = flag.Bool("quiet", false, "do not print the sample tree")
	)
	flag.StringVar(&o.Dir, "dir", "", "instance folder (slapd.conf, data); empty = a temporary folder removed on exit")
	flag.IntVar(&o.Port, "port", 0, "loopback port; 0 = a free one")
	flag.StringVar(&o.Checkpoint, "checkpoint", "", `syncprov-checkpoint "<ops> <minutes>" (default "100 10")`)
	flag.BoolVar(&o.NoSample, "no-sample", false, "load only the suffix entry")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, *fresh, *ready, *quiet); err != nil {
		log.Error("localdir", "err", err)
		os.Exit(1)
	}
}

func run(o localdir.Options, fresh bool, ready string, quiet bool) error {
	if fresh && o.Dir != "" {
		if err := os.RemoveAll(o.Dir); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	s, err := localdir.Start(startCtx, o)
	cancel()
	if err != nil {
		return err
	}
	defer s.Close()

	fmt.Printf("Local directory (OpenLDAP slapd, mdb + syncprov) is running.\n\n")
	fmt.Printf("  URL        %s\n", s.URL)
	fmt.Printf("  admin      %s  password %s\n", s.BindDN, s.Password)
	fmt.Printf("  consumer   %s  password %s\n", localdir.SampleConsumerDN, localdir.SampleConsumerPassword)
	fmt.Printf("  suffix     %s\n", s.Suffix)
	fmt.Printf("  config DN  %s\n", s.ConfigDN)
	fmt.Printf("  folder     %s\n\n", s.Dir)
	if !quiet {
		if err := printTree(s); err != nil {
			return err
		}
	}
	fmt.Printf("\nTry: ldapsearch -x -H %s -D %s -w %s -b %q '(objectClass=protocolCfgSMTPServer)'\n",
		s.URL, localdir.SampleConsumerDN, localdir.SampleConsumerPassword, s.ConfigDN)
	fmt.Printf("Press Ctrl-C to stop.\n")
	if ready != "" {
		if err := os.WriteFile(ready, []byte(s.URL+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(ready)
	}
	<-ctx.Done()
	fmt.Printf("\nstopping slapd\n")
	return s.Stop()
}

// printTree lists every entry below the suffix, indented by depth, with its
// most specific object class.
func printTree(s *localdir.Server) error {
	c, err := s.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(s.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"structuralObjectClass"}, nil))
	if err != nil {
		return err
	}
	type row struct {
		key   []string
		rdn   string
		class string
	}
	var rows []row
	base := len(strings.Split(s.Suffix, ","))
	for _, e := range res.Entries {
		dn, err := ldap.ParseDN(e.DN)
		if err != nil {
			return err
		}
		var key []string
		for i := len(dn.RDNs) - 1; i >= 0; i-- {
			key = append(key, strings.ToLower(dn.RDNs[i].String()))
		}
		rdn := e.DN
		if len(dn.RDNs) > base {
			rdn, _, _ = strings.Cut(e.DN, ",")
		}
		rows = append(rows, row{key, rdn, e.GetAttributeValue("structuralObjectClass")})
	}
	slices.SortFunc(rows, func(a, b row) int { return slices.Compare(a.key, b.key) })
	fmt.Printf("Sample tree (%d entries):\n", len(rows))
	for _, r := range rows {
		indent := strings.Repeat("  ", len(r.key)-base)
		fmt.Printf("  %s%-*s [%s]\n", indent, 50-len(indent), r.rdn, r.class)
	}
	return nil
}
