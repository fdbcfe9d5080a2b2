// Command sambadc runs a throw-away Samba Active Directory domain
// controller (deploy/samba): a fresh provision in a network namespace of
// its own, the Exchange schema extension and the sample organisation under
// the configuration naming context, reached through a loopback port. It
// prints the URL, the Administrator's DN and password and a ds2mb command
// line, runs until interrupted (Ctrl-C, SIGTERM), then stops samba and
// removes the namespace and the folder. It needs root.
//
//	go run ./deploy/cmd/sambadc [-ready FILE]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ds2mb/ds2mb/deploy/samba"
)

func main() {
	ready := flag.String("ready", "", "write the URL to this file once the DC accepts binds")
	noSample := flag.Bool("no-sample", false, "load the schema only, not the sample organisation")
	flag.Parse()
	if err := run(*ready, *noSample); err != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("sambadc", "err", err)
		os.Exit(1)
	}
}

func run(ready string, noSample bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	dc, err := samba.Start(startCtx, samba.Options{NoSample: noSample})
	cancel()
	if err != nil {
		return err
	}
	defer dc.Close()
	fmt.Printf("Samba AD DC (realm %s, single process, namespace %s) is running.\n\n", samba.Realm, dc.NS)
	fmt.Printf("  URL        %s\n", dc.URL)
	fmt.Printf("  admin      %s  password %s\n", dc.BindDN, dc.Password)
	fmt.Printf("  config DN  %s\n", dc.ConfigDN)
	fmt.Printf("  folder     %s\n\n", dc.Dir)
	fmt.Printf("Try: DS2MB_BIND_PASSWORD='%s' ds2mb --ldap-url %s --bind-dn '%s' --base-dn '%s' --server SERVER01 --metabase MetaBase.xml\n",
		dc.Password, dc.URL, dc.BindDN, dc.ConfigDN)
	fmt.Printf("Press Ctrl-C to stop and remove it.\n")
	if ready != "" {
		if err := os.WriteFile(ready, []byte(dc.URL+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(ready)
	}
	<-ctx.Done()
	return nil
}
