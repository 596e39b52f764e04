// The adapter kind: carries broadcasts (and, later, cluster requests)
// between instances. The boundary is two long-lived streams of batches,
// never one call per message.

package sdk

import "context"

// AdapterMessage is one broadcast crossing the cluster.
type AdapterMessage struct {
	Namespace   string
	Rooms       []string // empty = the whole namespace
	Except      []string
	Data        []byte   // the event's JSON array ["event", ...args], placeholders included
	Attachments [][]byte // binary attachments, in placeholder order
	Volatile    bool
	// Offset is set by an adapter that backs recovery (SessionStore) on the
	// broadcasts it delivers: the client gets it as the event's last
	// argument and presents it when it reconnects.
	Offset string
}

// Adapter is an adapter plugin.
type Adapter interface {
	Plugin
	// Publish sends a batch of messages to the other instances. The core
	// calls it from one goroutine; a batch is one stream frame. Across the
	// plugin boundary it returns once the frame is sent: the plugin's
	// failure to publish a batch is the error of a later call.
	Publish(ctx context.Context, batch []AdapterMessage) error
	// Subscribe runs until ctx ends, calling deliver with each batch of
	// messages that other instances published. deliver must not be called
	// concurrently.
	Subscribe(ctx context.Context, deliver func(batch []AdapterMessage) error) error
}
