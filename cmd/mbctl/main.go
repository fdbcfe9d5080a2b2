// Command mbctl is the operator's tool for a ds2mb MetaBase.xml: validate a
// file against the schema catalogue, show a node (with inheritance applied),
// diff two files or versions, list the history of versions and restore one.
//
//	mbctl validate [--json] FILE
//	mbctl show [--metabase FILE] [--effective] [--json] [LOCATION]
//	mbctl get [--metabase FILE] [--json] LOCATION PROPERTY
//	mbctl diff [--metabase FILE] [--json] A B | --version N
//	mbctl history [--metabase FILE] [--json]
//	mbctl restore [--metabase FILE] VERSION
//	mbctl queue [--worker ADDR] [--json] [list | retry ID | delete ID]
//	mbctl bindings list|add|remove|enable|disable|setprop|delprop ...
//	mbctl status [--replicator ADDR] [--worker ADDR] [--json]
//	mbctl dir get|set|add|delete --server NAME [--vs N] [PROPERTY [VALUE...]]
//	mbctl explain [--metabase FILE] [--json] LOCATION [PROPERTY]
//	mbctl version
//
// --metabase defaults to $DS2MB_METABASE, else ./MetaBase.xml.
package main

import (
	"encoding/json"
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
  mbctl validate [--json] FILE
        check FILE against the schema catalogue; exit 0 when valid, else 1
        and one line per problem: "Location: property: reason"
  mbctl show [--metabase FILE] [--effective] [--json] [LOCATION]
        list every Location, or show the properties of one node; with
        --effective, every catalogue property of that node kind with its
        effective value and where it comes from (set, inherited, default)
  mbctl get [--metabase FILE] [--json] LOCATION PROPERTY
        the effective value of one property, alone on a line (MULTISZ: one
        value per line); the source (set, inherited, default) goes to
        stderr, or into the JSON; exit 1 when it has no value
  mbctl diff [--metabase FILE] [--json] A B
  mbctl diff [--metabase FILE] [--json] --version N
        differences from A to B; each is a file, or vN for version N of the
        --metabase history; --version N compares version N with the current
        file; exit 0 when equal, 1 when they differ
  mbctl history [--metabase FILE] [--json]
        list the versions kept in the history folder
  mbctl restore [--metabase FILE] [--json] VERSION
        save version VERSION from the history as a new version: a local
        pin; the next replication of a property ds2mb owns writes the
        directory's value again
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
  mbctl dir get|set|add|delete [CONNECTION] --server NAME [--vs N] [PROPERTY [VALUE...]]
        read or edit a property in the directory, by metabase or attribute
        name, or add a virtual server; a value the catalogue refuses is not
        written (mbctl dir help)
  mbctl explain [--metabase FILE] [--json] LOCATION [PROPERTY]
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
	"validate": (*command).validate, "show": (*command).show, "get": (*command).get, "diff": (*command).diff,
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
	asJSON := c.jsonFlag()
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
	other := len(t.Unread())
	if *asJSON {
		v := validateJSON{File: pos[0], Valid: probs == nil, Version: t.Version, Nodes: t.Len() - other, OtherNodes: other,
			Problems: []problemJSON{}}
		for _, p := range probs {
			v.Problems = append(v.Problems, problemJSON{Location: p.Location, Property: p.Property, Reason: p.Reason})
		}
		if code := c.printJSON(v); code != exitOK || probs == nil {
			return code
		}
		return exitProblem
	}
	for _, p := range probs {
		fmt.Fprintln(c.stdout, p.Error())
	}
	if probs != nil {
		fmt.Fprintf(c.stderr, "%s: %d problem(s)\n", pos[0], len(probs))
		return exitProblem
	}
	smtp := t.Len() - other
	fmt.Fprintf(c.stdout, "%s: valid (version %d, %d nodes", pos[0], t.Version, smtp)
	if other > 0 {
		fmt.Fprintf(c.stdout, "; %d nodes of other IIS services kept unread", other)
	}
	fmt.Fprintln(c.stdout, ")")
	return exitOK
}

// validateJSON is the output of `validate --json`.
type validateJSON struct {
	File       string        `json:"file"`
	Valid      bool          `json:"valid"`
	Version    uint64        `json:"version"`
	Nodes      int           `json:"nodes"`      // SMTP nodes
	OtherNodes int           `json:"otherNodes"` // nodes of other IIS services, kept unread
	Problems   []problemJSON `json:"problems"`
}

// problemJSON is one validation problem: where and why.
type problemJSON struct {
	Location string `json:"location"`
	Property string `json:"property,omitempty"`
	Reason   string `json:"reason"`
}

// nodeJSON is a node in `show --json`.
type nodeJSON struct {
	Location   string     `json:"location"`
	Class      string     `json:"class"`
	Properties []propJSON `json:"properties,omitempty"`
}

// propJSON is a property in `show --json` and `get --json`. Secure values
// are masked.
type propJSON struct {
	Location string `json:"location,omitempty"`
	Name     string `json:"name"`
	Value    string `json:"value,omitempty"`
	// Source is set, inherited or default (--effective and get), or
	// unset; Invalid holds why a stored value does not parse.
	Source  string `json:"source,omitempty"`
	Invalid string `json:"invalid,omitempty"`
	// Catalogue is false for a property the catalogue does not know on
	// this kind of node (a Custom property, another tool's).
	Catalogue bool `json:"catalogue"`
}

func (c *command) show(args []string) int {
	mb := c.metabaseFlag()
	effective := c.fs.Bool("effective", false, "apply inheritance and defaults")
	asJSON := c.jsonFlag()
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
		list := []nodeJSON{}
		for _, n := range t.Nodes() {
			list = append(list, nodeJSON{Location: n.Location, Class: n.Class})
		}
		if *asJSON {
			return c.printJSON(list)
		}
		for _, n := range list {
			fmt.Fprintf(c.stdout, "%s\t%s\n", n.Location, n.Class)
		}
		return exitOK
	}
	n := t.Node(pos[0])
	if n == nil {
		return c.errorf("%s: no node at this Location in %s", pos[0], *mb)
	}
	out := nodeJSON{Location: n.Location, Class: n.Class, Properties: []propJSON{}}
	if !*effective {
		for _, p := range n.Props() {
			_, known := schema.Lookup(p.Name)
			out.Properties = append(out.Properties, propJSON{Name: p.Name, Value: metabase.ShowText(p), Catalogue: known && !p.Custom})
		}
		if *asJSON {
			return c.printJSON(out)
		}
		fmt.Fprintf(c.stdout, "%s\t%s\n", n.Location, n.Class)
		for _, p := range n.Props() {
			fmt.Fprintf(c.stdout, "  %s = %s%s\n", p.Name, display(metabase.ShowText(p)), customNote(p))
		}
		return exitOK
	}
	place, err := schema.Classify(n.Location)
	if err != nil {
		return c.errorf("%v", err)
	}
	failed := false
	known := map[string]bool{}
	for i := range schema.Properties() {
		sp := &schema.Properties()[i]
		if !sp.Nodes.Has(place.Kind) {
			continue
		}
		known[strings.ToLower(sp.Name)] = true
		pj, ok := effectiveProp(t, n.Location, sp)
		failed = failed || !ok
		out.Properties = append(out.Properties, pj)
	}
	for _, p := range n.Props() {
		if !known[strings.ToLower(p.Name)] {
			out.Properties = append(out.Properties, propJSON{Name: p.Name, Value: metabase.ShowText(p), Source: metabase.FromNode.String()})
		}
	}
	code := exitOK
	if failed {
		code = exitProblem
	}
	if *asJSON {
		if c.printJSON(out) != exitOK {
			return exitProblem
		}
		return code
	}
	fmt.Fprintf(c.stdout, "%s\t%s\n", n.Location, n.Class)
	if place.Kind == schema.NodeUnknown || place.Kind == schema.NodeContainer {
		fmt.Fprintf(c.stdout, "  (a %s node: no catalogue properties apply)\n", place.Kind)
	}
	for _, pj := range out.Properties {
		switch {
		case pj.Invalid != "":
			fmt.Fprintf(c.stdout, "  %s: invalid: %s\n", pj.Name, pj.Invalid)
		case pj.Source == "unset":
			fmt.Fprintf(c.stdout, "  %s (unset)\n", pj.Name)
		case !pj.Catalogue:
			p, _ := n.Get(pj.Name)
			fmt.Fprintf(c.stdout, "  %s = %s (set; not a catalogue property of a %s node)%s\n", pj.Name, display(pj.Value), place.Kind, customNote(p))
		default:
			fmt.Fprintf(c.stdout, "  %s = %s (%s)\n", pj.Name, display(pj.Value), pj.Source)
		}
	}
	return code
}

// effectiveProp is the effective value of catalogue property sp at loc;
// ok is false when the stored value is invalid.
func effectiveProp(t *metabase.Tree, loc string, sp *schema.Property) (pj propJSON, ok bool) {
	pj = propJSON{Name: sp.Name, Catalogue: true}
	v, src, has, err := t.Effective(loc, sp.Name)
	switch {
	case err != nil:
		pj.Invalid = err.Error()
		return pj, false
	case !has:
		pj.Source = "unset"
	default:
		pj.Value, pj.Source = sp.Render(v), src.String()
		if sp.Secure {
			pj.Value = metabase.Masked
		}
	}
	return pj, true
}

// get prints one property's effective value: for scripts, the value alone
// on stdout.
func (c *command) get(args []string) int {
	mb := c.metabaseFlag()
	asJSON := c.jsonFlag()
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	if len(pos) != 2 {
		return c.usageError("want LOCATION PROPERTY")
	}
	t, n, code := c.loadNode(*mb, pos[0])
	if n == nil {
		return code
	}
	var pj propJSON
	if sp, known := schema.Lookup(pos[1]); known {
		pj, ok = effectiveProp(t, n.Location, sp)
		if !ok {
			return c.errorf("%s: %s: invalid: %s", n.Location, sp.Name, pj.Invalid)
		}
	} else if p, has := n.Get(pos[1]); has {
		pj = propJSON{Name: p.Name, Value: metabase.ShowText(p), Source: metabase.FromNode.String()}
	} else {
		return c.errorf("%s: %s is neither set on this node nor a catalogue property", n.Location, pos[1])
	}
	pj.Location = n.Location
	if pj.Source == "unset" {
		if *asJSON {
			c.printJSON(pj)
		}
		return c.errorf("%s: %s is not set, not inherited and has no default", n.Location, pj.Name)
	}
	if *asJSON {
		return c.printJSON(pj)
	}
	fmt.Fprintln(c.stdout, pj.Value)
	fmt.Fprintf(c.stderr, "%s: %s (%s)\n", n.Location, pj.Name, pj.Source)
	return exitOK
}

// loadNode loads the metabase file mb and finds the node at loc; on
// failure the node is nil and code the exit code, the error reported.
func (c *command) loadNode(mb, loc string) (*metabase.Tree, *metabase.Node, int) {
	t, err := metabase.Load(mb)
	if err != nil {
		return nil, nil, c.errorf("%v", err)
	}
	n := t.Node(loc)
	if n == nil {
		return nil, nil, c.errorf("%s: no node at this Location in %s", loc, mb)
	}
	return t, n, exitOK
}

// jsonFlag adds --json.
func (c *command) jsonFlag() *bool {
	return c.fs.Bool("json", false, "print JSON for scripts instead of a table")
}

// printJSON writes v as indented JSON.
func (c *command) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return c.errorf("%v", err)
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

// changeJSON is one difference in `diff --json`; secure values are masked.
type changeJSON struct {
	Kind     string `json:"kind"`
	Location string `json:"location"`
	Property string `json:"property,omitempty"`
	Old      string `json:"old,omitempty"`
	New      string `json:"new,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

func (c *command) diff(args []string) int {
	mb := c.metabaseFlag()
	asJSON := c.jsonFlag()
	version := c.fs.String("version", "", "compare version N of the history with the current file")
	pos, ok := c.parse(args)
	if !ok {
		return exitUsage
	}
	switch {
	case *version != "" && len(pos) != 0:
		return c.usageError("--version N compares with the current file: no A B with it")
	case *version != "":
		if _, err := strconv.ParseUint(strings.TrimPrefix(*version, "v"), 10, 64); err != nil {
			return c.usageError("--version %q is not a version number", *version)
		}
		pos = []string{"v" + strings.TrimPrefix(*version, "v"), *mb}
	case len(pos) != 2:
		return c.usageError("want two files or versions, A and B, or --version N")
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
	if *asJSON {
		list := []changeJSON{}
		for _, ch := range changes {
			list = append(list, changeJSON{Kind: ch.Kind.String(), Location: ch.Location, Property: ch.Property, Old: ch.Old, New: ch.New, Detail: ch.Detail})
		}
		if c.printJSON(list) != exitOK {
			return exitProblem
		}
	} else {
		if *version != "" {
			fmt.Fprintf(c.stderr, "from version %d to the current file (version %d):\n", trees[0].Version, trees[1].Version)
		}
		for _, ch := range changes {
			fmt.Fprintln(c.stdout, ch.String())
		}
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

// versionJSON is one version in `history --json`.
type versionJSON struct {
	Version uint64 `json:"version"`
	SavedAt string `json:"savedAt,omitempty"`
	Bytes   int64  `json:"bytes,omitempty"`
	Current bool   `json:"current"`
}

func (c *command) history(args []string) int {
	mb := c.metabaseFlag()
	asJSON := c.jsonFlag()
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
	list := []versionJSON{}
	for _, v := range vs {
		vj := versionJSON{Version: v, Current: haveCurrent && v == current}
		if info, err := os.Stat(s.HistoryFile(v)); err == nil {
			vj.SavedAt, vj.Bytes = info.ModTime().UTC().Format("2006-01-02T15:04:05Z"), info.Size()
		}
		list = append(list, vj)
	}
	if *asJSON {
		return c.printJSON(list)
	}
	if len(vs) == 0 {
		fmt.Fprintf(c.stdout, "no versions in %s\n", s.HistoryDir())
	}
	for _, vj := range list {
		mark := ""
		if vj.Current {
			mark = "\t(current)"
		}
		if vj.SavedAt == "" {
			fmt.Fprintf(c.stdout, "%d%s\n", vj.Version, mark)
			continue
		}
		fmt.Fprintf(c.stdout, "%d\t%s\t%d bytes%s\n", vj.Version, vj.SavedAt, vj.Bytes, mark)
	}
	return exitOK
}

func (c *command) restore(args []string) int {
	mb := c.metabaseFlag()
	asJSON := c.jsonFlag()
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
	const pinNote = "this is a local pin: the next replication of a property ds2mb owns (a directory change, ds2mb's restart or its periodic --resync) writes the directory's value again; to keep a value, set it in the directory (mbctl dir set)"
	if *asJSON {
		return c.printJSON(struct {
			Restored uint64 `json:"restored"`
			Version  uint64 `json:"version"` // the version the file now has
			Written  bool   `json:"written"` // false: the file already had that content
			Note     string `json:"note,omitempty"`
		}{v, old.Version, wrote, map[bool]string{true: pinNote}[wrote]})
	}
	if !wrote {
		fmt.Fprintf(c.stdout, "version %d has the content of the current file (version %d); nothing written\n", v, old.Version)
		return exitOK
	}
	fmt.Fprintf(c.stdout, "restored version %d as version %d\n", v, old.Version)
	fmt.Fprintln(c.stdout, pinNote)
	return exitOK
}

// buildVersion is the module version mbctl was built from, or "devel".
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
