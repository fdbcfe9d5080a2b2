package replicator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ds2mb/ds2mb/metabase"
	"github.com/ds2mb/ds2mb/schema"
)

// DesiredProp is one property the replicator wants on a node: its text as
// written in MetaBase.xml, and whether it is a <Custom> STRING (sink
// properties) rather than a catalogue property.
type DesiredProp struct {
	Text   string `json:"text"`
	Custom bool   `json:"custom,omitempty"`
}

// DesiredNode is one node of the owned subtree.
type DesiredNode struct {
	Location string
	Class    string
	Origin   string // entryUUID of the object that produced it
	Props    map[string]DesiredProp
}

// Refusal is a directory value the replicator did not replicate, naming DN,
// attribute, value and reason, and where it would have gone. Structural
// refusals (a bad virtual-server number, a malformed binding) mean the
// object's Location is unknown: its previous nodes are kept as they were.
type Refusal struct {
	Origin     string
	DN         string
	Attribute  string
	Value      string
	Reason     string
	Location   string
	Property   string
	Structural bool
}

// Ignored is a directory object that is not replicated, and why.
type Ignored struct {
	DN     string
	Reason string
}

// Rendered is the owned subtree the mirror describes.
type Rendered struct {
	Nodes   map[string]*DesiredNode // key: lower-case Location
	Refused []Refusal
	Ignored []Ignored
}

func (r *Rendered) node(loc, class, origin string) *DesiredNode {
	k := strings.ToLower(loc)
	if n, ok := r.Nodes[k]; ok {
		return n
	}
	n := &DesiredNode{Location: loc, Class: class, Origin: origin, Props: map[string]DesiredProp{}}
	r.Nodes[k] = n
	return n
}

func (r *Rendered) refuse(f Refusal) { r.Refused = append(r.Refused, f) }

// objKind is what a mirror object is to the replicator.
type objKind int

const (
	kindOther objKind = iota
	kindService
	kindServer
	kindPolicy
	kindConnector
	kindBinding
)

func classify(o *Object) objKind {
	switch {
	case o.HasClass(schema.ClassEventBinding):
		return kindBinding
	case o.HasClass(schema.ClassSMTPServer):
		return kindServer
	case o.HasClass(schema.ClassSMTP):
		return kindService
	case o.HasClass(schema.ClassRecipientPolicy):
		return kindPolicy
	case o.HasClass(schema.ClassSMTPConnector):
		return kindConnector
	}
	return kindOther
}

// serverOf finds the server name in a DN whose RDNs from index i are
// "cn=SMTP,cn=Protocols,cn=<server>,cn=Servers".
func serverOf(rs []rdn, i int) (string, bool) {
	if len(rs) < i+4 || !rs[i].isCN("SMTP") || !rs[i+1].isCN("Protocols") || rs[i+2].typ != "cn" || !rs[i+3].isCN("Servers") {
		return "", false
	}
	return rs[i+2].val, true
}

// Render computes the subtree the replicator owns for one server from the
// mirror: a pure function of its inputs, table-tested.
//
//   - the server's protocolCfgSMTP object → /LM/SmtpSvc (IIsSmtpService);
//   - each protocolCfgSMTPServer CN=n of the server → /LM/SmtpSvc/n
//     (IIsSmtpServer); n must be a plain number 1–1048576;
//   - every mapped attribute through schema.ForAttribute and
//     Property.FromDirectory; an attribute whose property does not live on
//     that node kind is not replicated there; a refused value is reported
//     and its property left out (the merge then keeps the last good value);
//   - recipient policies → /LM/SmtpSvc/n/Domain/<domain> on every virtual
//     server of the server: authoritative SMTP domains with RouteAction
//     SMTP_ALIAS, those listed in msExchNonAuthoritativeDomains with
//     SMTP_DOMAIN_RELAY (a domain authoritative in any policy is local);
//   - SMTP connectors → for each "SMTP:<space>;<cost>" address space a
//     domain node named by the space on the connector's source bridgehead
//     virtual servers (all of the server's when it names none):
//     SMTP_SMARTHOST with RouteActionString = the connector's smart host, or
//     SMTP_DOMAIN_RELAY without one. The catch-all space "*" is not a domain
//     node (it is the virtual server's own SmartHost) and is reported as
//     ignored. Between connectors the lowest cost wins, then the first DN;
//     a domain that is also a local (policy) domain stays local;
//   - ds2mbEventBinding objects below a rendered virtual server →
//     /LM/SmtpSvc/n/EventManager/EventTypes/{CATID}/Bindings/{ID} with
//     …/SourceProperties (Priority, Rule) and …/SinkProperties (each
//     ds2mbSinkProperty Name=Value as a Custom STRING). Without
//     ds2mbBindingID the ID is the object's entryUUID.
//
// Objects of other servers are ignored.
func Render(m Mirror, server string) *Rendered {
	r := &Rendered{Nodes: map[string]*DesiredNode{}}
	ids := m.sortedUUIDs()
	servers := map[string]int{} // normalised VS DN → n
	var vsNums []int
	var policies, connectors, bindings []string

	for _, id := range ids {
		o := m[id]
		rs := o.parsed()
		switch classify(o) {
		case kindService:
			name, ok := serverOf(rs, 0)
			if !ok {
				r.Ignored = append(r.Ignored, Ignored{o.DN, "protocolCfgSMTP object not at cn=SMTP,cn=Protocols,cn=<server>,cn=Servers"})
				continue
			}
			if !strings.EqualFold(name, server) {
				r.Ignored = append(r.Ignored, Ignored{o.DN, "another server's (" + name + ")"})
				continue
			}
			n := r.node(schema.ServiceLocation, metabase.ClassService, id)
			renderProps(r, n, schema.NodeService, id, o)
		case kindServer:
			name, ok := serverOf(rs, 1)
			if !ok {
				r.Ignored = append(r.Ignored, Ignored{o.DN, "protocolCfgSMTPServer object not below cn=SMTP,cn=Protocols,cn=<server>,cn=Servers"})
				continue
			}
			if !strings.EqualFold(name, server) {
				r.Ignored = append(r.Ignored, Ignored{o.DN, "another server's (" + name + ")"})
				continue
			}
			num, err := vsNumber(rs[0].val)
			if err != nil {
				r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: attrCN, Value: rs[0].val, Reason: err.Error(), Structural: true})
				continue
			}
			n := r.node(schema.ServerLocation(num), metabase.ClassServer, id)
			renderProps(r, n, schema.NodeServer, id, o)
			servers[o.normalized()] = num
			vsNums = append(vsNums, num)
		case kindPolicy:
			policies = append(policies, id)
		case kindConnector:
			connectors = append(connectors, id)
		case kindBinding:
			bindings = append(bindings, id)
		default:
			r.Ignored = append(r.Ignored, Ignored{o.DN, "not an object class the replicator reads"})
		}
	}
	slices.Sort(vsNums)

	renderDomains(r, m, policies, connectors, servers, vsNums)
	for _, id := range bindings {
		renderBinding(r, id, m[id], servers)
	}
	return r
}

// vsNumber reads a virtual server's CN: a plain number 1–1048576.
func vsNumber(cn string) (int, error) {
	n, err := strconv.Atoi(cn)
	if err != nil || n < 1 || n > 1<<20 || strconv.Itoa(n) != cn {
		return 0, fmt.Errorf("virtual server CN %q must be a plain number 1–1048576 (it becomes /LM/SmtpSvc/<n>)", cn)
	}
	return n, nil
}

// renderProps maps every attribute of o that the catalogue pairs with a
// property living on node kind k.
func renderProps(r *Rendered, n *DesiredNode, k schema.NodeKind, id string, o *Object) {
	names := make([]string, 0, len(o.Attrs))
	for a := range o.Attrs {
		names = append(names, a)
	}
	slices.Sort(names)
	for _, a := range names {
		p, ok := schema.ForAttribute(a)
		if !ok || !p.Nodes.Has(k) {
			continue
		}
		vals := o.Attrs[a]
		v, err := p.FromDirectory(vals)
		if err == nil && p.Type != schema.BINARY {
			err = checkXMLText(vals)
		}
		if err != nil {
			r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: a, Value: printable(vals), Reason: err.Error(), Location: n.Location, Property: p.Name})
			continue
		}
		n.Props[p.Name] = DesiredProp{Text: p.Render(v)}
	}
}

// checkXMLText refuses text MetaBase.xml cannot hold: invalid UTF-8 and
// the control characters XML 1.0 forbids (all below U+0020 but tab, line
// feed and carriage return).
func checkXMLText(vals []string) error {
	for _, v := range vals {
		if !utf8.ValidString(v) {
			return fmt.Errorf("%q is not valid UTF-8 text", abbrevValue(v))
		}
		for _, r := range v {
			if r < 0x20 && r != '\t' && r != '\n' && r != '\r' || r == 0xFFFE || r == 0xFFFF {
				return fmt.Errorf("%q holds a control character (U+%04X) XML cannot carry", abbrevValue(v), r)
			}
		}
	}
	return nil
}

func abbrevValue(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// printable shows directory values in an event: binary ones in hex.
func printable(vals []string) string {
	out := make([]string, len(vals))
	for i, v := range vals {
		if isText(v) {
			out[i] = v
		} else {
			out[i] = fmt.Sprintf("0x%x", v)
		}
	}
	s := strings.Join(out, "; ")
	if len(s) > 200 {
		s = s[:197] + "..."
	}
	return s
}

func isText(s string) bool {
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0xFFFD {
			return false
		}
	}
	return true
}

type domainRoute struct {
	local, relay bool   // from policies
	origin       string // policy or connector that decided
	smartHost    string // connector smart host ("" = relay)
	cost         int
	connector    bool
}

// policyDomain reads a gatewayProxy value: "SMTP:@example.com" or
// "smtp:%g.%s@example.com" → "example.com". ok is false for non-SMTP proxies.
func policyDomain(v string) (string, bool) {
	typ, addr, found := strings.Cut(v, ":")
	if !found || !strings.EqualFold(typ, "smtp") {
		return "", false
	}
	if i := strings.LastIndex(addr, "@"); i >= 0 {
		addr = addr[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(addr)), true
}

func renderDomains(r *Rendered, m Mirror, policies, connectors []string, servers map[string]int, vsNums []int) {
	routeAction, _ := schema.Lookup("RouteAction")
	routeString, _ := schema.Lookup("RouteActionString")

	// Policies: the same domains on every virtual server.
	local := map[string]*domainRoute{}
	var localOrder []string
	for _, id := range policies {
		o := m[id]
		nonAuth := map[string]bool{}
		for _, d := range o.Get(schema.AttrNonAuthoritative) {
			nonAuth[strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))] = true
		}
		for _, v := range o.Get(schema.AttrGatewayProxy) {
			d, ok := policyDomain(v)
			if !ok {
				continue // X400:, FAX:, … are not SMTP domains
			}
			if err := schema.CheckDomain(d); err != nil {
				r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrGatewayProxy, Value: v, Reason: err.Error()})
				continue
			}
			dr, seen := local[d]
			if !seen {
				dr = &domainRoute{origin: id}
				local[d] = dr
				localOrder = append(localOrder, d)
			}
			if nonAuth[d] {
				dr.relay = true
			} else {
				dr.local = true
			}
		}
	}
	for _, n := range vsNums {
		for _, d := range localOrder {
			dr := local[d]
			flags := schema.RouteDomainRelay
			if dr.local {
				flags = schema.RouteAlias
			}
			node := r.node(schema.DomainLocation(n, d), metabase.ClassDomain, dr.origin)
			node.Props[routeAction.Name] = DesiredProp{Text: routeAction.Render(schema.DWordValue(flags))}
		}
	}

	// Connectors: per virtual server, lowest cost wins.
	perVS := map[int]map[string]*domainRoute{}
	for _, id := range connectors {
		o := m[id]
		smart := strings.TrimSpace(o.First(schema.AttrSmartHost))
		if smart != "" {
			if _, err := schema.ParseSmartHost(smart); err != nil {
				r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrSmartHost, Value: smart, Reason: err.Error(), Structural: true})
				continue
			}
		}
		var targets []int
		if bh := o.Get(schema.AttrSourceBridgeheads); len(bh) > 0 {
			for _, dn := range bh {
				if n, ok := servers[normDN(dn)]; ok {
					targets = append(targets, n)
				}
			}
			if len(targets) == 0 {
				r.Ignored = append(r.Ignored, Ignored{o.DN, "its bridgeheads are not virtual servers of this server"})
				continue
			}
		} else {
			targets = vsNums
		}
		for _, v := range o.Get(schema.AttrRoutingList) {
			typ, rest, found := strings.Cut(v, ":")
			if !found || !strings.EqualFold(typ, "smtp") {
				continue // X400, X500 … address spaces are not ours
			}
			space, costText, _ := strings.Cut(rest, ";")
			space = strings.ToLower(strings.TrimSpace(space))
			cost := 1
			if costText != "" {
				c, err := strconv.Atoi(strings.TrimSpace(costText))
				if err != nil || c < 1 || c > 100 {
					r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrRoutingList, Value: v, Reason: "cost must be a number 1–100"})
					continue
				}
				cost = c
			}
			if space == "*" {
				r.Ignored = append(r.Ignored, Ignored{o.DN, "address space SMTP:* (every domain) is the virtual server's SmartHost, not a domain node; not replicated"})
				continue
			}
			if err := schema.CheckDomain(space); err != nil {
				r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrRoutingList, Value: v, Reason: err.Error()})
				continue
			}
			for _, n := range targets {
				if perVS[n] == nil {
					perVS[n] = map[string]*domainRoute{}
				}
				cur, ok := perVS[n][space]
				if ok && cur.cost <= cost {
					continue
				}
				perVS[n][space] = &domainRoute{origin: id, smartHost: smart, cost: cost, connector: true}
			}
		}
	}
	for _, n := range vsNums {
		spaces := make([]string, 0, len(perVS[n]))
		for s := range perVS[n] {
			spaces = append(spaces, s)
		}
		slices.Sort(spaces)
		for _, s := range spaces {
			if _, isLocal := local[s]; isLocal {
				continue // local wins
			}
			dr := perVS[n][s]
			node := r.node(schema.DomainLocation(n, s), metabase.ClassDomain, dr.origin)
			if dr.smartHost != "" {
				node.Props[routeAction.Name] = DesiredProp{Text: routeAction.Render(schema.DWordValue(schema.RouteSmartHost))}
				node.Props[routeString.Name] = DesiredProp{Text: dr.smartHost}
			} else {
				node.Props[routeAction.Name] = DesiredProp{Text: routeAction.Render(schema.DWordValue(schema.RouteDomainRelay))}
			}
		}
	}
}

func renderBinding(r *Rendered, id string, o *Object, servers map[string]int) {
	rs := o.parsed()
	if len(rs) < 2 {
		r.Ignored = append(r.Ignored, Ignored{o.DN, "event binding without a parent"})
		return
	}
	parent := joinDN(rs[1:])
	vs, ok := servers[parent]
	if !ok {
		r.Ignored = append(r.Ignored, Ignored{o.DN, "event binding not below a replicated virtual server of this server"})
		return
	}
	etText := o.First(schema.AttrEventType)
	et, ok := schema.LookupEvent(etText)
	if !ok {
		r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrEventType, Value: etText, Reason: "not a known SMTP event type (smtpreg name or CATID)", Structural: true})
		return
	}
	bid := strings.TrimSpace(o.First(schema.AttrBindingID))
	if bid == "" {
		bid = "{" + strings.ToUpper(id) + "}"
	}
	if err := schema.CheckGUID(bid); err != nil {
		r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrBindingID, Value: bid, Reason: err.Error(), Structural: true})
		return
	}
	loc := schema.BindingLocation(vs, et.CATID, bid)
	if prev, dup := r.Nodes[strings.ToLower(loc)]; dup {
		r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrBindingID, Value: bid,
			Reason: "binding ID already used by another binding object of the same event type (entryUUID " + prev.Origin + ")", Structural: true})
		return
	}
	bn := r.node(loc, metabase.ClassConfig, id)
	renderProps(r, bn, schema.NodeBinding, id, o)
	src := &DesiredNode{Location: loc + "/SourceProperties", Class: metabase.ClassConfig, Origin: id, Props: map[string]DesiredProp{}}
	renderProps(r, src, schema.NodeBindingSource, id, o)
	if len(src.Props) > 0 {
		r.Nodes[strings.ToLower(src.Location)] = src
	}
	sink := &DesiredNode{Location: loc + "/SinkProperties", Class: metabase.ClassConfig, Origin: id, Props: map[string]DesiredProp{}}
	for _, v := range o.Get(schema.AttrSinkProperty) {
		name, val, found := strings.Cut(v, "=")
		name = strings.TrimSpace(name)
		reason := ""
		switch {
		case !found || name == "":
			reason = `want "Name=Value"`
		case strings.ContainsAny(name, "/\"<>&"):
			reason = "property name may not hold / \" < > &"
		case checkXMLText([]string{v}) != nil:
			reason = checkXMLText([]string{v}).Error()
		default:
			if _, known := schema.Lookup(name); known {
				reason = "name " + name + " is a catalogue property; sink properties need their own names"
			} else if _, dup := sink.Props[name]; dup {
				reason = "sink property " + name + " given twice"
			}
		}
		if reason != "" {
			r.refuse(Refusal{Origin: id, DN: o.DN, Attribute: schema.AttrSinkProperty, Value: v, Reason: reason, Location: sink.Location, Property: name})
			continue
		}
		sink.Props[name] = DesiredProp{Text: val, Custom: true}
	}
	if len(sink.Props) > 0 {
		r.Nodes[strings.ToLower(sink.Location)] = sink
	}
}
