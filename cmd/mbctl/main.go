// Command mbctl is the operator's tool for a ds2mb MetaBase.xml: validate a
// file against the schema catalogue, show a node (with inheritance applied),
// diff two files or versions, list the history of versions and restore one.
//
//	mbctl validate FILE
//	mbctl show [--metabase FILE] [--effective] [LOCATION]
//	mbctl diff [--metabase FILE] A B
//	mbctl history [--metabase FILE]
//	mbctl restore [--metabase FILE] VERSION
//	mbctl queue [--worker ADDR] [--json] [list | retry ID | delete ID]
//	mbctl bindings list|add|remove|enable|disable|setprop|delprop ...
//	mbctl status [--replicator ADDR] [--worker ADDR] [--json]
//	mbctl dir get|set|delete --server NAME [--vs N] PROPERTY [VALUE...]
//	mbctl explain LOCATION [PROPERTY]
//	mbctl version
//
// --metabase defaults to $DS2MB_METABASE, else ./MetaBase.xml.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

// Exit codes.
const (
	exitOK      = 0 // success; for diff: no difference
	exitProblem = 1 // invalid file, differences, a failed operation
	exitUsage   = 2 // bad command line
)

const usage = `mbctl: the ds2mb MetaBase.xml tool

Usage:
  mbctl validate FILE
        check FILE against the schema catalogue; exit 0 when valid, else 1
        and one line per problem: "Location: property: reason"
  mbctl show [--metabase FILE] [--effective] [LOCATION]
        list every Location, or show the properties of one node; with
        --effective, every catalogue property of that node kind with its
        effective value and where it comes from (set, inherited, default)
  mbctl diff [--metabase FILE] A B
        differences from A to B; each is a file, or vN for version N of the
        --metabase history; exit 0 when equal, 1 when they differ
  mbctl history [--metabase FILE]
        list the versions kept in the history folder
  mbctl restore [--metabase FILE] VERSION
        save version VERSION from the history as a new version
  mbctl queue [--worker ADDR] [--json] [list | retry ID | delete ID]
        the SMTP worker's queue: every message with its state, attempts,
        next attempt and last error; retry makes one due now, delete removes
        it without a notification (ADDR: the worker's --status-addr,
        default $DS2MB_WORKER or 127.0.0.1:8025)
  mbctl status [--metabase FILE] [--replicator ADDR] [--worker ADDR] [--json]
        each part and the version it runs: the directory change stamp ds2mb
        last replicated and the version it wrote (ADDR: ds2mb's
        --status-addr, default $DS2MB_REPLICATOR or 127.0.0.1:8026), the
        file's version, the version smtpsvc serves and any refusal (its
        --status-addr, default $DS2MB_WORKER or 127.0.0.1:8025); exit 1 when
        the worker does not answer or refused the current file
  mbctl dir get|set|delete [CONNECTION] --server NAME [--vs N] PROPERTY [VALUE...]
        read or edit a property in the directory, by metabase or attribute
        name; a value the catalogue refuses is not written (mbctl dir help)
  mbctl explain [--metabase FILE] LOCATION [PROPERTY]
        where a node's values come from: the directory object (DN) and
        attribute that produced them, or "local"
  mbctl bindings list|add|remove|enable|disable|setprop|delprop ...
        the event bindings of the metabase, like smtpreg.vbs; writes are
        checked and saved atomically as a new version (mbctl bindings help)
  mbctl version
        print mbctl's version

--metabase defaults to $DS2MB_METABASE, else ./MetaBase.xml.
Secure values (RoutePassword, Custom SECURE) are shown as ********.
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// commands are mbctl's subcommands by name.
var commands = map[string]func(*command, []string) int{
	"validate": (*command).validate, "show": (*command).show, "diff": (*command).diff,
	"history": (*command).history, "restore": (*command).restore, "queue": (*command).queueCmd,
	"bindings": (*command).bindings, "status": (*command).status, "dir": (*command).dir,
	"explain": (*command).explain,
}

// run executes one mbctl command line and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	c := &command{name: cmd, stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet("mbctl "+cmd, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.fs.Usage = func() { fmt.Fprint(stderr, usage) }
	if f, ok := commands[cmd]; ok {
		return f(c, rest)
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "mbctl", buildVersion())
		return exitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "mbctl: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

type command struct {
	name           string
	fs             *flag.FlagSet
	stdout, stderr io.Writer
}

func (c *command) errorf(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "mbctl %s: %s\n", c.name, fmt.Sprintf(format, a...))
	return exitProblem
}

func (c *command) usageError(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "mbctl %s: %s\n\n%s", c.name, fmt.Sprintf(format, a...), usage)
	return exitUsage
}

// subcommand starts a command group (mbctl bindings, mbctl dir): help
// when asked or when no subcommand is given (done, with the exit code),
// else the subcommand, its arguments, and a fresh flag set for it.
func (c *command) subcommand(group, usage string, args []string) (sub string, rest []string, code int, done bool) {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(c.stdout, usage)
		if len(args) == 0 {
			return "", nil, exitUsage, true
		}
		return "", nil, exitOK, true
	}
	sub, rest = args[0], args[1:]
	c.name = group + " " + sub
	c.fs = flag.NewFlagSet("mbctl "+c.name, flag.ContinueOnError)
	c.fs.SetOutput(c.stderr)
	c.fs.Usage = func() { fmt.Fprint(c.stderr, usage) }
	return sub, rest, 0, false
}

// metabaseFlag adds --metabase with its default.
func (c *command) metabaseFlag() *string {
	def := os.Getenv("DS2MB_METABASE")
	if def == "" {
		def = "MetaBase.xml"
	}
	return c.fs.String("metabase", def, "the MetaBase.xml (default $DS2MB_METABASE or ./MetaBase.xml)")
}

// parse reads flags wherever they stand among the arguments and returns the
// positional ones.
func (c *command) parse(args []string) ([]string, bool) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, false
		}
		args = c.fs.Args()
		if len(args) == 0 {
			return pos, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (c *command) validate(args []string) int {
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) != 1 {
		return c.usageError("want exactly one FILE")
	}
	t, err := metabase.Load(pos[0])
	if err != nil {
		return c.errorf("%v", err)
	}
	probs := t.Validate()
	for _, p := range probs {
		fmt.Fprintln(c.stdout, p.Error())
	}
	if probs != nil {
		fmt.Fprintf(c.stderr, "%s: %d problem(s)\n", pos[0], len(probs))
		return exitProblem
	}
	other := len(t.Unread())
	smtp := t.Len() - other
	fmt.Fprintf(c.stdout, "%s: valid (version %d, %d nodes", pos[0], t.Version, smtp)
	if other > 0 {
		fmt.Fprintf(c.stdout, "; %d nodes of other IIS services kept unread", other)
	}
	fmt.Fprintln(c.stdout, ")")
	return exitOK
}

func (c *command) show(args []string) int {
	mb := c.metabaseFlag()
	effective := c.fs.Bool("effective", false, "apply inheritance and defaults")
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) > 1 {
		return c.usageError("want at most one LOCATION")
	}
	t, err := metabase.Load(*mb)
	if err != nil {
		return c.errorf("%v", err)
	}
	if len(pos) == 0 {
		if *effective {
			return c.usageError("--effective needs a LOCATION")
		}
		for _, n := range t.Nodes() {
			fmt.Fprintf(c.stdout, "%s\t%s\n", n.Location, n.Class)
		}
		return exitOK
	}
	loc := pos[0]
	n := t.Node(loc)
	if n == nil {
		return c.errorf("%s: no node at this Location in %s", loc, *mb)
	}
	fmt.Fprintf(c.stdout, "%s\t%s\n", n.Location, n.Class)
	if !*effective {
		for _, p := range n.Props() {
			fmt.Fprintf(c.stdout, "  %s = %s%s\n", p.Name, display(metabase.ShowText(p)), customNote(p))
		}
		return exitOK
	}
	place, err := schema.Classify(n.Location)
	if err != nil {
		return c.errorf("%v", err)
	}
	if place.Kind == schema.NodeUnknown || place.Kind == schema.NodeContainer {
		fmt.Fprintf(c.stdout, "  (a %s node: no catalogue properties apply)\n", place.Kind)
	}
	failed := false
	known := map[string]bool{}
	for i := range schema.Properties() {
		sp := &schema.Properties()[i]
		if !sp.Nodes.Has(place.Kind) {
			continue
		}
		known[strings.ToLower(sp.Name)] = true
		v, src, has, err := t.Effective(n.Location, sp.Name)
		switch {
		case err != nil:
			failed = true
			fmt.Fprintf(c.stdout, "  %s: invalid: %v\n", sp.Name, err)
		case !has:
			fmt.Fprintf(c.stdout, "  %s (unset)\n", sp.Name)
		default:
			text := sp.Render(v)
			if sp.Secure {
				text = metabase.Masked
			}
			fmt.Fprintf(c.stdout, "  %s = %s (%s)\n", sp.Name, display(text), src)
		}
	}
	for _, p := range n.Props() {
		if known[strings.ToLower(p.Name)] {
			continue
		}
		fmt.Fprintf(c.stdout, "  %s = %s (set; not a catalogue property of a %s node)%s\n", p.Name, display(metabase.ShowText(p)), place.Kind, customNote(p))
	}
	if failed {
		return exitProblem
	}
	return exitOK
}

// display shows a value on one line: quoted when it holds line breaks or
// other control characters (MULTISZ values), as is otherwise.
func display(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}

func customNote(p metabase.Property) string {
	if !p.Custom {
		return ""
	}
	return fmt.Sprintf("  [Custom ID=%d Type=%v UserType=%s Attributes=%s]", p.ID, p.Type, p.UserType, p.Attributes)
}

func (c *command) diff(args []string) int {
	mb := c.metabaseFlag()
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) != 2 {
		return c.usageError("want two files or versions, A and B")
	}
	var trees [2]*metabase.Tree
	for i, arg := range pos {
		t, err := loadArg(*mb, arg)
		if err != nil {
			return c.errorf("%v", err)
		}
		trees[i] = t
	}
	changes := metabase.Diff(trees[0], trees[1])
	for _, ch := range changes {
		fmt.Fprintln(c.stdout, ch.String())
	}
	if len(changes) > 0 {
		return exitProblem
	}
	return exitOK
}

// loadArg loads a file, or version N of the store's history when the
// argument is vN and no such file exists.
func loadArg(mb, arg string) (*metabase.Tree, error) {
	if _, err := os.Stat(arg); err == nil {
		return metabase.Load(arg)
	}
	if num, ok := strings.CutPrefix(arg, "v"); ok {
		if v, err := strconv.ParseUint(num, 10, 64); err == nil {
			return metabase.Open(mb).Version(v)
		}
	}
	_, err := metabase.Load(arg)
	return nil, err
}

func (c *command) history(args []string) int {
	mb := c.metabaseFlag()
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) != 0 {
		return c.usageError("history takes no arguments")
	}
	s := metabase.Open(*mb)
	vs, err := s.Versions()
	if err != nil {
		return c.errorf("%v", err)
	}
	var current uint64
	haveCurrent := false
	if t, err := metabase.Load(*mb); err == nil {
		current, haveCurrent = t.Version, true
	} else if !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(c.stderr, "mbctl history: current file: %v\n", err)
	}
	if len(vs) == 0 {
		fmt.Fprintf(c.stdout, "no versions in %s\n", s.HistoryDir())
	}
	for _, v := range vs {
		mark := ""
		if haveCurrent && v == current {
			mark = "\t(current)"
		}
		info, err := os.Stat(s.HistoryFile(v))
		if err != nil {
			fmt.Fprintf(c.stdout, "%d%s\n", v, mark)
			continue
		}
		fmt.Fprintf(c.stdout, "%d\t%s\t%d bytes%s\n", v, info.ModTime().UTC().Format("2006-01-02T15:04:05Z"), info.Size(), mark)
	}
	return exitOK
}

func (c *command) restore(args []string) int {
	mb := c.metabaseFlag()
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) != 1 {
		return c.usageError("want one VERSION")
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(pos[0], "v"), 10, 64)
	if err != nil {
		return c.usageError("%q is not a version number", pos[0])
	}
	s := metabase.Open(*mb)
	old, err := s.Version(v)
	if err != nil {
		return c.errorf("%v", err)
	}
	wrote, err := s.Save(old)
	if err != nil {
		return c.errorf("%v", err)
	}
	if !wrote {
		fmt.Fprintf(c.stdout, "version %d has the content of the current file (version %d); nothing written\n", v, old.Version)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "restored version %d as version %d\n", v, old.Version)
	return exitOK
}

// buildVersion is the module version mbctl was built from, or "devel".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
