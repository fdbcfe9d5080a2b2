package schema

// Structural attributes of a ds2mbEventBinding that name where a binding
// lives rather than a property value (the replicator builds the binding's
// Location from them), and the multi-valued sink property list. The other
// binding attributes map to properties through the catalogue.
const (
	AttrEventType    = "ds2mbEventType"    // smtpreg name or CATID → …/EventTypes/{CATID}
	AttrBindingID    = "ds2mbBindingID"    // {GUID} → …/Bindings/{GUID}
	AttrSinkProperty = "ds2mbSinkProperty" // "Name=Value" → …/SinkProperties Custom STRING
)
