package schema

import "strings"

// EventKind separates protocol events (fired by the SMTP session) from
// transport events (fired on a message after it is accepted).
type EventKind int

// The kinds of event.
const (
	ProtocolEvent EventKind = iota + 1
	TransportEvent
)

// EventType is one SMTP event type: its smtpreg name and COM category ID.
type EventType struct {
	Name  string
	CATID string
	Kind  EventKind
}

// EventTypes lists the SMTP event types of REFERENCE.md §5.2.
var EventTypes = []EventType{
	{"OnInboundCommand", "{F6628C8D-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"OnServerResponse", "{F6628C8E-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"OnSessionStart", "{F6628C8F-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"OnMessageStart", "{F6628C90-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"OnPerRecipient", "{F6628C91-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"OnBeforeData", "{F6628C92-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"OnSessionEnd", "{F6628C93-0D5E-11D2-AA68-00C04FA35B82}", ProtocolEvent},
	{"StoreDriver", "{59175850-E533-11D1-AA67-00C04FA345F6}", TransportEvent},
	{"OnArrival", "{FF3CAA23-00B9-11D2-9DFB-00C04FA322BA}", TransportEvent},
	{"OnPreCategorize", "{A3ACFB0D-83FF-11D2-9E14-00C04FA322BA}", TransportEvent},
	{"OnCategorize", "{960252A3-0A3A-11D2-9E00-00C04FA322BA}", TransportEvent},
	{"OnPostCategorize", "{76719654-05A6-11D2-9DFD-00C04FA322BA}", TransportEvent},
	{"OnTransportRouter", "{283430C9-1850-11D2-9E03-00C04FA322BA}", TransportEvent},
	{"MsgTrackLog", "{C6DF52AA-7DB0-11D2-94F4-00C04F79F1D6}", TransportEvent},
	{"DnsResolver", "{BD0B4366-8E03-11D2-94F6-00C04F79F1D6}", TransportEvent},
	{"MaxMsgSize", "{EBF159DE-A67E-11D2-94F7-00C04F79F1D6}", TransportEvent},
}

// LookupEvent finds an event type by smtpreg name (OnTransportSubmission is
// an alias of OnArrival) or by CATID, case-insensitively, braces optional.
func LookupEvent(s string) (EventType, bool) {
	k := strings.TrimSpace(s)
	if strings.EqualFold(k, "OnTransportSubmission") {
		k = "OnArrival"
	}
	braced := k
	if !strings.HasPrefix(braced, "{") {
		braced = "{" + braced + "}"
	}
	for _, e := range EventTypes {
		if strings.EqualFold(e.Name, k) || strings.EqualFold(e.CATID, braced) {
			return e, true
		}
	}
	return EventType{}, false
}
