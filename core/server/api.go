package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/protocol/siowire"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
)

// The HTTP API for backends: what a Node backend does with
// @socket.io/redis-emitter and io.fetchSockets(), over HTTP with a bearer
// token, cluster-wide.
const (
	apiPrefix = "/api/v1/"
	// apiMaxBody bounds a request body (1 MB, like max_payload's default).
	apiMaxBody = 1000000
	// apiMaxAckTimeout bounds how long one call may wait for acks.
	apiMaxAckTimeout = time.Minute
	// apiRequestTimeout bounds a call that waits for other instances
	// (their adapter's own request timeout is usually shorter).
	apiRequestTimeout = 30 * time.Second
	// apiMaxSockets bounds the sockets one fetch returns.
	apiMaxSockets = 100000
)

type api struct {
	s        *Server
	tokenSum atomic.Pointer[[sha256.Size]byte] // a reload may change the token
	log      *logrus.Entry
	routes   map[string]apiRoute
}

type apiRoute struct {
	method string
	fn     func(w http.ResponseWriter, r *http.Request, c *apiCall) (int, any)
}

// apiCall is what the log line of one call says.
type apiCall struct {
	name      string
	namespace string
}

// apiError is a refusal: its status and the reason in {"error": ...}.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func newAPI(s *Server, cfg *config.API, log *logrus.Entry) *api {
	a := &api{s: s, log: log}
	a.setToken(cfg.Token)
	a.routes = map[string]apiRoute{
		"emit":        {http.MethodPost, a.emit},
		"sockets":     {http.MethodGet, a.sockets},
		"rooms":       {http.MethodGet, a.rooms},
		"join":        {http.MethodPost, a.joinLeave(true)},
		"leave":       {http.MethodPost, a.joinLeave(false)},
		"disconnect":  {http.MethodPost, a.disconnect},
		"server-emit": {http.MethodPost, a.serverEmit},
		"reload":      {http.MethodPost, a.reload},
	}
	return a
}

// ServeHTTP checks the token, runs the endpoint, writes its JSON answer and
// logs the call.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &apiCall{name: strings.TrimPrefix(r.URL.Path, apiPrefix)}
	status, body := a.serve(w, r, c)
	if e, ok := body.(*apiError); ok {
		body = map[string]string{"error": e.msg}
	}
	writeJSON(w, status, body)
	f := logrus.Fields{"api_call": c.name, "namespace": c.namespace, "status": status,
		"duration_ms": time.Since(start).Milliseconds(), "remote_addr": r.RemoteAddr}
	if m, ok := body.(map[string]string); ok && status >= 400 {
		f["error"] = m["error"]
	}
	a.log.WithFields(f).Info("api call")
}

func (a *api) serve(w http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
	if status, err := a.authorize(w, r); err != nil {
		return status, err
	}
	rt, ok := a.routes[c.name]
	if !ok {
		return http.StatusNotFound, &apiError{http.StatusNotFound, fmt.Sprintf("no endpoint %s%s; see the README's Backend HTTP API section", apiPrefix, c.name)}
	}
	if r.Method != rt.method {
		w.Header().Set("Allow", rt.method)
		return http.StatusMethodNotAllowed, &apiError{http.StatusMethodNotAllowed, fmt.Sprintf("%s%s takes %s", apiPrefix, c.name, rt.method)}
	}
	status, body := rt.fn(w, r, c)
	if e, ok := body.(*apiError); ok {
		return e.status, e
	}
	return status, body
}

// authorize checks the bearer token in constant time: both sides are hashed
// first, so not even the token's length leaks.
func (a *api) authorize(w http.ResponseWriter, r *http.Request) (int, *apiError) {
	h := r.Header.Get("Authorization")
	scheme, _, found := strings.Cut(h, " ")
	if h == "" || !found || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="socketfleet"`)
		return http.StatusUnauthorized, &apiError{http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>"}
	}
	if !a.tokenMatches(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="socketfleet", error="invalid_token"`)
		return http.StatusUnauthorized, &apiError{http.StatusUnauthorized, "invalid bearer token"}
	}
	return 0, nil
}

// tokenMatches reports whether r carries the API token as a bearer token.
func (a *api) tokenMatches(r *http.Request) bool {
	scheme, token, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum.Load()[:]) == 1
}

var jsonBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func writeJSON(w http.ResponseWriter, status int, body any) {
	buf := jsonBufs.Get().(*bytes.Buffer)
	defer jsonBufs.Put(buf)
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"encoding the answer failed"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decodeBody reads one JSON object into dst: unknown fields, trailing data
// and bodies over apiMaxBody are refused with a reason.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) *apiError {
	body := http.MaxBytesReader(w, r.Body, apiMaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data after the JSON object")
			if mbe := (*http.MaxBytesError)(nil); errors.As(extra, &mbe) {
				err = extra
			}
		}
	}
	var (
		mbe    *http.MaxBytesError
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", apiMaxBody)}
	case errors.Is(err, io.EOF):
		return badRequest("empty body: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of body")
	case errors.As(err, &syntax):
		return badRequest("malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("the body must be a JSON object, not %s", typ.Value)
		}
		field := strings.TrimPrefix(typ.Field, "selection.") // the embedded struct is not part of the body's shape
		return badRequest("field %q must be %s, not %s", field, jsonKind(typ.Type.String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("malformed body: %v", err)
}

func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean"
	case strings.HasPrefix(goType, "[]string"):
		return "a list of strings"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "of another type"
}

// selection is the part of a body that picks sockets: in any of rooms (all
// when empty) and in none of except.
type selection struct {
	Namespace string   `json:"namespace"`
	Rooms     []string `json:"rooms"`
	Except    []string `json:"except"`
}

// resolve checks the selection and finds its namespace (404 when it is not
// declared).
func (a *api) resolve(sel selection, c *apiCall) (*socketio.Namespace, rooms.Options, *apiError) {
	if sel.Namespace == "" {
		sel.Namespace = "/"
	}
	c.namespace = sel.Namespace
	ns := a.s.SocketIO.Namespace(sel.Namespace)
	if ns == nil {
		return nil, rooms.Options{}, &apiError{http.StatusNotFound, fmt.Sprintf("namespace %q is not declared in the config", sel.Namespace)}
	}
	if err := roomList("rooms", sel.Rooms, false); err != nil {
		return nil, rooms.Options{}, err
	}
	if err := roomList("except", sel.Except, false); err != nil {
		return nil, rooms.Options{}, err
	}
	return ns, rooms.Options{Rooms: sel.Rooms, Except: sel.Except}, nil
}

func roomList(field string, rooms []string, required bool) *apiError {
	if required && len(rooms) == 0 {
		return badRequest("%s must name at least one room", field)
	}
	for i, r := range rooms {
		if r == "" {
			return badRequest("%s[%d] is an empty room name", field, i)
		}
	}
	return nil
}

// eventData checks an event name and its arguments and builds the
// ["event", ...args] array.
func eventData(event string, args []json.RawMessage) ([]byte, *apiError) {
	switch {
	case event == "":
		return nil, badRequest("event is required")
	case slices.Contains(config.ReservedEvents, event):
		return nil, badRequest("event %q is reserved by Socket.IO (reserved: %s)", event, strings.Join(config.ReservedEvents, ", "))
	}
	raw := make([][]byte, len(args))
	for i, a := range args {
		if len(a) == 0 { // a JSON null element decodes to an empty RawMessage
			raw[i] = []byte("null")
			continue
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, a); err != nil {
			return nil, badRequest("args[%d] is not valid JSON: %v", i, err)
		}
		raw[i] = buf.Bytes()
	}
	return socketio.EventData(event, raw), nil
}

// servers is the "servers" object of an answer: how many instances were
// expected to answer and how many did, this one included.
type servers struct {
	Expected  int  `json:"expected"`
	Answered  int  `json:"answered"`
	LocalOnly bool `json:"local_only,omitempty"` // the adapter carries no requests: this instance only
}

func serversOf(r socketio.Reach) servers {
	return servers{Expected: r.Expected, Answered: r.Answered, LocalOnly: r.LocalOnly}
}

// clusterFailed is the answer when the adapter could not carry a request
// (e.g. the plugin is down): this instance's part is done, the others' not.
func clusterFailed(err error) *apiError {
	return &apiError{http.StatusServiceUnavailable, "cluster request failed (this instance's part was done): " + err.Error()}
}

// rawOrNull keeps a JSON value as is for the answer, or null when it is
// not valid JSON (an answer from another instance is not trusted to be).
func rawOrNull(b []byte) json.RawMessage {
	if len(b) == 0 || !siowire.Valid(b) {
		return json.RawMessage("null")
	}
	return json.RawMessage(b)
}

type emitBody struct {
	selection
	Event      string            `json:"event"`
	Args       []json.RawMessage `json:"args"`
	AckTimeout string            `json:"ack_timeout"`
}

type ackAnswer struct {
	Responses []json.RawMessage `json:"responses"`
	Servers   servers           `json:"servers"`
}

// emit broadcasts an event cluster-wide; with ack_timeout it waits for
// every client's ack.
func (a *api) emit(w http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
	var b emitBody
	if err := decodeBody(w, r, &b); err != nil {
		return 0, err
	}
	ns, opts, aerr := a.resolve(b.selection, c)
	if aerr != nil {
		return 0, aerr
	}
	data, aerr := eventData(b.Event, b.Args)
	if aerr != nil {
		return 0, aerr
	}
	if b.AckTimeout == "" {
		ns.BroadcastData(opts, data, nil)
		return http.StatusAccepted, map[string]bool{"ok": true}
	}
	timeout, err := time.ParseDuration(b.AckTimeout)
	if err != nil || timeout <= 0 || timeout > apiMaxAckTimeout {
		return 0, badRequest("ack_timeout %q must be a duration such as \"5s\", above 0 and at most %s", b.AckTimeout, apiMaxAckTimeout)
	}
	out := ackAnswer{Responses: []json.RawMessage{}}
	res, err := ns.BroadcastWithAck(r.Context(), opts, data, nil, timeout, func(ack []byte, _ [][]byte) {
		out.Responses = append(out.Responses, rawOrNull(ack))
	})
	if err != nil {
		return 0, clusterFailed(err)
	}
	out.Servers = serversOf(res.Reach)
	return http.StatusOK, out
}

type socketJSON struct {
	ID        string          `json:"id"`
	Rooms     []string        `json:"rooms"`
	Data      json.RawMessage `json:"data"`
	Handshake json.RawMessage `json:"handshake"`
}

// query reads the selection from the query string; unknown parameters are
// refused like unknown fields.
func query(r *http.Request, allowSelection bool) (selection, *apiError) {
	q := r.URL.Query()
	for k := range q {
		switch {
		case k == "namespace":
		case allowSelection && (k == "room" || k == "except"):
		default:
			return selection{}, badRequest("unknown query parameter %q", k)
		}
	}
	return selection{Namespace: q.Get("namespace"), Rooms: q["room"], Except: q["except"]}, nil
}

// sockets describes the selected sockets of every instance.
func (a *api) sockets(_ http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
	sel, aerr := query(r, true)
	if aerr != nil {
		return 0, aerr
	}
	ns, opts, aerr := a.resolve(sel, c)
	if aerr != nil {
		return 0, aerr
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiRequestTimeout)
	defer cancel()
	socks, truncated, reach, err := ns.FetchSockets(ctx, opts, apiMaxSockets)
	if err != nil {
		return 0, clusterFailed(err)
	}
	out := struct {
		Sockets   []socketJSON `json:"sockets"`
		Truncated bool         `json:"truncated,omitempty"`
		Servers   servers      `json:"servers"`
	}{Sockets: make([]socketJSON, 0, len(socks)), Truncated: truncated, Servers: serversOf(reach)}
	for _, s := range socks {
		rooms := s.Rooms
		if rooms == nil {
			rooms = []string{}
		}
		out.Sockets = append(out.Sockets, socketJSON{ID: s.ID, Rooms: rooms, Data: rawOrNull(s.Data), Handshake: rawOrNull(s.Handshake)})
	}
	slices.SortFunc(out.Sockets, func(x, y socketJSON) int { return strings.Compare(x.ID, y.ID) })
	return http.StatusOK, out
}

// rooms lists the named rooms held anywhere in the cluster.
func (a *api) rooms(_ http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
	sel, aerr := query(r, false)
	if aerr != nil {
		return 0, aerr
	}
	ns, _, aerr := a.resolve(sel, c)
	if aerr != nil {
		return 0, aerr
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiRequestTimeout)
	defer cancel()
	rooms, reach, err := ns.AllRooms(ctx)
	if err != nil {
		return 0, clusterFailed(err)
	}
	if rooms == nil {
		rooms = []string{}
	}
	slices.Sort(rooms)
	return http.StatusOK, struct {
		Rooms   []string `json:"rooms"`
		Servers servers  `json:"servers"`
	}{rooms, serversOf(reach)}
}

// joinLeave makes the selected sockets join (or leave) rooms everywhere.
func (a *api) joinLeave(join bool) func(http.ResponseWriter, *http.Request, *apiCall) (int, any) {
	return func(w http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
		var b struct {
			selection
			Join  []string `json:"join"`
			Leave []string `json:"leave"`
		}
		if err := decodeBody(w, r, &b); err != nil {
			return 0, err
		}
		ns, opts, aerr := a.resolve(b.selection, c)
		if aerr != nil {
			return 0, aerr
		}
		field, targets, wrong, other := "join", b.Join, "leave", b.Leave
		if !join {
			field, targets, wrong, other = "leave", b.Leave, "join", b.Join
		}
		if other != nil {
			return 0, badRequest("unknown field %q: this endpoint takes %q", wrong, field)
		}
		if aerr := roomList(field, targets, true); aerr != nil {
			return 0, aerr
		}
		ctx, cancel := context.WithTimeout(r.Context(), apiRequestTimeout)
		defer cancel()
		var err error
		if join {
			_, err = ns.SocketsJoin(ctx, opts, targets)
		} else {
			_, err = ns.SocketsLeave(ctx, opts, targets)
		}
		if err != nil {
			return 0, clusterFailed(err)
		}
		return http.StatusOK, map[string]bool{"ok": true}
	}
}

// disconnect disconnects the selected sockets everywhere.
func (a *api) disconnect(w http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
	var b struct {
		selection
		Close bool `json:"close"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		return 0, err
	}
	ns, opts, aerr := a.resolve(b.selection, c)
	if aerr != nil {
		return 0, aerr
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiRequestTimeout)
	defer cancel()
	if _, err := ns.DisconnectSockets(ctx, opts, b.Close); err != nil {
		return 0, clusterFailed(err)
	}
	return http.StatusOK, map[string]bool{"ok": true}
}

// serverEmit sends a server-side emit to every instance (this one
// included); with ack it gathers each server's answer.
func (a *api) serverEmit(w http.ResponseWriter, r *http.Request, c *apiCall) (int, any) {
	var b struct {
		Namespace string            `json:"namespace"`
		Event     string            `json:"event"`
		Args      []json.RawMessage `json:"args"`
		Ack       bool              `json:"ack"`
	}
	if err := decodeBody(w, r, &b); err != nil {
		return 0, err
	}
	ns, _, aerr := a.resolve(selection{Namespace: b.Namespace}, c)
	if aerr != nil {
		return 0, aerr
	}
	data, aerr := eventData(b.Event, b.Args)
	if aerr != nil {
		return 0, aerr
	}
	ctx, cancel := context.WithTimeout(r.Context(), apiRequestTimeout)
	defer cancel()
	if !b.Ack {
		if _, err := ns.ServerSideEmit(ctx, data, nil, nil); err != nil {
			return 0, clusterFailed(err)
		}
		return http.StatusOK, map[string]bool{"ok": true}
	}
	out := ackAnswer{Responses: []json.RawMessage{}}
	reach, err := ns.ServerSideEmit(ctx, data, nil, func(ack []byte, _ [][]byte) {
		out.Responses = append(out.Responses, rawOrNull(ack))
	})
	if err != nil {
		return 0, clusterFailed(err)
	}
	out.Servers = serversOf(reach)
	return http.StatusOK, out
}
