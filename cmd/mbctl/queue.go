package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ds2mb/ds2mb/smtpsvc/queue"
)

// queueCmd lists the worker's queue, or retries or deletes one message,
// through the worker's status address (the queue lives in the worker).
func (c *command) queueCmd(args []string) int {
	addr := c.fs.String("worker", envOr("DS2MB_WORKER", "127.0.0.1:8025"), "the SMTP worker's status address (default $DS2MB_WORKER or 127.0.0.1:8025)")
	asJSON := c.fs.Bool("json", false, "print the list as JSON")
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	base := "http://" + *addr
	client := &http.Client{Timeout: 10 * time.Second}
	if len(pos) == 0 || pos[0] == "list" {
		if len(pos) > 1 {
			return c.usageError("queue list takes no argument")
		}
		resp, err := client.Get(base + "/queue")
		if err != nil {
			return c.errorf("cannot reach the worker at %s: %v", *addr, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			return c.errorf("worker at %s: %s: %s", *addr, resp.Status, strings.TrimSpace(string(b)))
		}
		var list []queue.Info
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return c.errorf("worker at %s: unreadable answer: %v", *addr, err)
		}
		if *asJSON {
			enc := json.NewEncoder(c.stdout)
			enc.SetIndent("", "  ")
			enc.Encode(list)
			return exitOK
		}
		printQueue(c.stdout, list)
		return exitOK
	}
	if (pos[0] != "retry" && pos[0] != "delete") || len(pos) != 2 {
		return c.usageError("queue: want list, retry ID or delete ID")
	}
	resp, err := client.Post(base+"/queue/"+pos[0]+"?id="+url.QueryEscape(pos[1]), "", nil)
	if err != nil {
		return c.errorf("cannot reach the worker at %s: %v", *addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		return c.errorf("%s", strings.TrimSpace(string(b)))
	}
	fmt.Fprintf(c.stdout, "%s: %s\n", pos[1], map[string]string{"retry": "due now", "delete": "deleted"}[pos[0]])
	return exitOK
}

// printQueue writes the queue as a table: one line per message, then one
// per recipient not yet delivered.
func printQueue(w io.Writer, list []queue.Info) {
	if len(list) == 0 {
		fmt.Fprintln(w, "the queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVS\tSTATE\tATTEMPTS\tNEXT ATTEMPT\tFROM\tRECIPIENTS\tLAST ERROR")
	for _, in := range list {
		next := "-"
		if !in.NextAttempt.IsZero() {
			next = in.NextAttempt.Local().Format("2006-01-02 15:04:05")
		}
		pending := 0
		for _, r := range in.Recipients {
			if r.Status == "pending" {
				pending++
			}
		}
		from := in.From
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%d (%d pending)\t%s\n", in.ID, in.Instance, in.State, in.Attempts, next, from,
			len(in.Recipients), pending, in.LastError)
	}
	tw.Flush()
}
