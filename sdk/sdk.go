// Package sdk is what a plugin author needs: the lifecycle every plugin
// implements, the schema of a plugin's config block, and the Go interface of
// each plugin kind (Authenticator, Adapter, Sharder, MetricsExporter,
// LogSink). Plugins and the core see these Go interfaces only; the gRPC
// contract under them is versioned and generated (sdk/proto).
//
// A plugin's main calls Serve. The host launches plugins with go-plugin
// using Handshake and HostPlugins; what it dispenses implements the kind's
// interface, and errors from the plugin arrive as *PluginError. The test kit
// is in sdk/plugintest.
//
// sdk never imports the core.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
)

// ProtocolVersion is the version of the plugin protocol: the gRPC services
// in sdk/proto. A plugin built against another version is refused at launch.
const ProtocolVersion = 1

// Kind is a plugin kind; it is also the config block type that selects it.
type Kind string

// The plugin kinds.
const (
	KindAuth     Kind = "auth"
	KindAdapter  Kind = "adapter"
	KindSharding Kind = "sharding"
	KindMetrics  Kind = "metrics"
	KindLogSink  Kind = "log_sink"
)

// Kinds lists every plugin kind.
func Kinds() []Kind { return []Kind{KindAuth, KindAdapter, KindSharding, KindMetrics, KindLogSink} }

// Info describes a plugin.
type Info struct {
	Kind            Kind
	Name            string // the block label that selects it, e.g. "jwt" in auth "jwt" { }
	Version         string
	ProtocolVersion int
}

// AttrType is the type of a config attribute.
type AttrType string

// Attribute types. Durations arrive as Go duration strings ("1.5s"), sizes as
// a number of bytes; the core parses and checks both with positions.
const (
	TypeString     AttrType = "string"
	TypeNumber     AttrType = "number"
	TypeBool       AttrType = "bool"
	TypeListString AttrType = "list(string)"
	TypeMapString  AttrType = "map(string)"
	TypeDuration   AttrType = "duration"
	TypeSize       AttrType = "size"
)

// Attribute is one attribute a plugin's config block may contain.
type Attribute struct {
	Name        string
	Type        AttrType
	Required    bool
	Description string
}

// Schema is what a plugin's config block may contain. Attributes only: a
// plugin block stays flat and obvious.
type Schema struct {
	Attributes []Attribute
}

// Config is a plugin's decoded config block, as a JSON object: attribute
// name to value (strings, numbers, bools, lists and maps of strings;
// durations as strings, sizes as numbers). Unset optional attributes are
// absent.
type Config json.RawMessage

// Decode unmarshals the config into v (a struct with json tags).
func (c Config) Decode(v any) error {
	if len(c) == 0 {
		return nil
	}
	if err := json.Unmarshal(c, v); err != nil {
		return fmt.Errorf("decode plugin config: %w", err)
	}
	return nil
}

// Plugin is the lifecycle every plugin implements, whatever its kind.
type Plugin interface {
	Info() Info
	ConfigSchema() Schema
	// Configure receives the decoded block once, before any other call. An
	// error here stops the core's start-up with the message.
	Configure(ctx context.Context, cfg Config) error
}
