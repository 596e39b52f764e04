package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
)

var errUnknownNamespace = errors.New("unknown namespace")

// op is one decoded action of the UI (lib/typed-events.ts, ClientEvents):
//
//	emit(nsp, filter, event, ...args)
//	join(nsp, room, filter?)
//	leave(nsp, room, filter?)
//	_disconnect(nsp, close, filter?)
//
// filter is a room (a socket id for one socket); none means every socket.
type op struct {
	nsp, filter, room, event string
	close                    bool
	args                     [][]byte
}

func (o *op) fields() logrus.Fields {
	f := logrus.Fields{"namespace": o.nsp, "filter": o.filter}
	switch {
	case o.event != "":
		f["event"] = o.event
	case o.room != "":
		f["room"] = o.room
	default:
		f["close"] = o.close
	}
	return f
}

func parseAction(name string, args [][]byte) (*op, error) {
	o := &op{}
	need := 2
	if name == "emit" {
		need = 3
	}
	if len(args) < need {
		return nil, fmt.Errorf("%s needs %d arguments, got %d", name, need, len(args))
	}
	if err := str(args[0], &o.nsp, false); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	switch name {
	case "emit":
		if err := str(args[1], &o.filter, true); err != nil {
			return nil, fmt.Errorf("filter: %w", err)
		}
		if err := str(args[2], &o.event, false); err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		if slices.Contains(config.ReservedEvents, o.event) {
			return nil, fmt.Errorf("event %q is reserved by Socket.IO", o.event)
		}
		o.args = args[3:]
		return o, nil
	case "join", "leave":
		if err := str(args[1], &o.room, false); err != nil {
			return nil, fmt.Errorf("room: %w", err)
		}
	case "_disconnect":
		if err := json.Unmarshal(args[1], &o.close); err != nil {
			return nil, fmt.Errorf("close: want a boolean: %w", err)
		}
	}
	if len(args) > 2 {
		if err := str(args[2], &o.filter, true); err != nil {
			return nil, fmt.Errorf("filter: %w", err)
		}
	}
	return o, nil
}

// str decodes a JSON string; with optional, null and "" mean none.
func str(raw []byte, dst *string, optional bool) error {
	if optional && string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errors.New("want a string")
	}
	if *dst == "" && !optional {
		return errors.New("empty")
	}
	return nil
}
