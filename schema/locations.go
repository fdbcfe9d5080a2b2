package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// ServiceLocation is the Location of the SMTP service node.
const ServiceLocation = "/LM/SmtpSvc"

// Place is a classified metabase Location.
type Place struct {
	Kind     NodeKind
	Instance int    // virtual server number, 0 for the service
	Domain   string // domain name of a domain node
	Event    string // CATID of a binding node
	Binding  string // binding ID of a binding node
}

// ServerLocation is the Location of virtual server n.
func ServerLocation(n int) string { return ServiceLocation + "/" + strconv.Itoa(n) }

// DomainLocation is the Location of a domain node of virtual server n.
func DomainLocation(n int, domain string) string {
	return ServerLocation(n) + "/Domain/" + strings.ToLower(domain)
}

// BindingLocation is the Location of an event binding of virtual server n.
func BindingLocation(n int, catid, id string) string {
	return ServerLocation(n) + "/EventManager/EventTypes/" + strings.ToUpper(catid) + "/Bindings/" + strings.ToUpper(id)
}

// Classify says what a Location is. Locations outside /LM/SmtpSvc (another
// IIS service's nodes) are NodeUnknown, which callers keep but do not read.
func Classify(loc string) (Place, error) {
	rest, ok := cutFold(loc, ServiceLocation)
	if !ok {
		if strings.EqualFold(loc, "/LM") || strings.EqualFold(loc, "/") {
			return Place{Kind: NodeContainer}, nil
		}
		return Place{Kind: NodeUnknown}, nil
	}
	if rest == "" {
		return Place{Kind: NodeService}, nil
	}
	if !strings.HasPrefix(rest, "/") {
		return Place{Kind: NodeUnknown}, nil
	}
	parts := strings.Split(rest[1:], "/")
	n, err := strconv.Atoi(parts[0])
	if err != nil {
		if strings.EqualFold(parts[0], "Info") {
			return Place{Kind: NodeContainer}, nil
		}
		return Place{}, fmt.Errorf("%s: %q is not a virtual server number", loc, parts[0])
	}
	if n < 1 || n > 1<<20 || strconv.Itoa(n) != parts[0] {
		return Place{}, fmt.Errorf("%s: virtual server number %q must be a plain number 1–1048576", loc, parts[0])
	}
	p := Place{Instance: n}
	switch {
	case len(parts) == 1:
		p.Kind = NodeServer
	case strings.EqualFold(parts[1], "Domain"):
		if len(parts) == 2 {
			p.Kind = NodeContainer
		} else if len(parts) == 3 {
			if err := CheckDomain(parts[2]); err != nil {
				return Place{}, fmt.Errorf("%s: domain node: %v", loc, err)
			}
			p.Kind, p.Domain = NodeDomain, strings.ToLower(parts[2])
		} else {
			return Place{}, fmt.Errorf("%s: nothing may live below a domain node", loc)
		}
	case strings.EqualFold(parts[1], "RoutingSources"):
		p.Kind = NodeRoutingSources
	case strings.EqualFold(parts[1], "EventManager"):
		return classifyEvent(loc, parts[2:], p)
	default:
		p.Kind = NodeContainer
	}
	return p, nil
}

// classifyEvent reads EventTypes/{CATID}/Bindings/{ID}[/SourceProperties|/SinkProperties].
func classifyEvent(loc string, parts []string, p Place) (Place, error) {
	p.Kind = NodeContainer
	if len(parts) == 0 {
		return p, nil
	}
	if !strings.EqualFold(parts[0], "EventTypes") {
		return p, nil // other SEO nodes (SourceTypes, …) are kept as they are
	}
	if len(parts) >= 2 {
		if err := CheckGUID(parts[1]); err != nil {
			return Place{}, fmt.Errorf("%s: event type: %v", loc, err)
		}
		p.Event = strings.ToUpper(parts[1])
	}
	if len(parts) >= 3 && !strings.EqualFold(parts[2], "Bindings") {
		return Place{}, fmt.Errorf("%s: want …/EventTypes/{CATID}/Bindings/{ID}", loc)
	}
	if len(parts) >= 4 {
		if err := CheckGUID(parts[3]); err != nil {
			return Place{}, fmt.Errorf("%s: binding ID: %v", loc, err)
		}
		p.Binding = strings.ToUpper(parts[3])
		p.Kind = NodeBinding
	}
	switch {
	case len(parts) == 5 && strings.EqualFold(parts[4], "SourceProperties"):
		p.Kind = NodeBindingSource
	case len(parts) == 5 && strings.EqualFold(parts[4], "SinkProperties"):
		p.Kind = NodeBindingSink
	case len(parts) >= 5:
		// IIS also stores each binding property as its own key
		// (…/Bindings/{ID}/SinkClass with a Custom MD_0); keep such nodes.
		p.Kind = NodeContainer
	}
	return p, nil
}

func cutFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return "", false
}
