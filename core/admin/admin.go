// Package admin speaks the server side of the Socket.IO Admin UI
// (@socket.io/admin-ui 0.5): the /admin namespace with its basic auth and
// sessions, the config event, server_stats every 2 s, the development
// mode's socket, room and event reports, and the UI's actions (emit, join,
// leave, _disconnect), applied cluster-wide.
//
// Everything the namespace sends goes out as a broadcast of the /admin
// namespace, so it travels through the cluster adapter like any other: a UI
// connected to one instance hears every instance, Node servers with the
// admin-ui package on the same adapter included, and they hear us.
package admin

import (
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/engineio"
	"github.com/socketfleet/socketfleet/core/rooms"
	"github.com/socketfleet/socketfleet/core/socketio"
)

// StatsInterval is how often an instance sends server_stats (the UI marks
// a server unhealthy after 10 s without one).
const StatsInterval = 2 * time.Second

// actionTimeout bounds one action's cluster request.
const actionTimeout = 5 * time.Second

// The UI's features (lib/typed-events.ts); the write ones are left out in
// read-only mode.
var (
	writeFeatures = []string{"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"}
	readFeatures  = []string{"AGGREGATED_EVENTS"}
	devFeatures   = []string{"ALL_EVENTS"}
)

// Actions are the UI's write events, in the order of Stats' counters.
var Actions = [...]string{"emit", "join", "leave", "_disconnect"}

// Options configure the admin namespace of one instance.
type Options struct {
	Config   *config.Admin
	ServerID string // the instance id: how the UI tells servers apart
	Log      *logrus.Entry
}

// Stats count logins and actions, for /metrics.
type Stats struct {
	LoginsOK        atomic.Int64
	LoginsFailed    atomic.Int64
	SessionsResumed atomic.Int64
	LoginsBusy      atomic.Int64 // refused: too many password checks at once
	Done            [len(Actions)]atomic.Int64
	Refused         [len(Actions)]atomic.Int64 // read-only mode, or invalid arguments
}

// Admin is the /admin namespace's handler and the stats sender.
type Admin struct {
	cfg      *config.Admin
	srv      *socketio.Server
	eng      *engineio.Server
	ns       *socketio.Namespace
	log      *logrus.Entry
	serverID string
	hostname string
	pid      int
	started  time.Time
	config   []byte // the config event's argument
	sessions *sessions
	// checks bounds the bcrypt comparisons running at once: each costs
	// tens of milliseconds of CPU, and a flood of wrong passwords must not
	// take the cores from the clients.
	checks chan struct{}
	prev   counters // touched by the stats loop only
	Stats  Stats
}

// New makes the admin side of srv; Attach adds its namespace once the
// others are declared.
func New(srv *socketio.Server, o Options) *Admin {
	host, _ := os.Hostname()
	a := &Admin{cfg: o.Config, srv: srv, log: o.Log, serverID: o.ServerID, hostname: host,
		pid: os.Getpid(), started: time.Now(), sessions: newSessions(maxSessions, sessionTTL),
		checks: make(chan struct{}, 2)}
	var features []string
	if !a.cfg.ReadOnly {
		features = append(features, writeFeatures...)
	}
	features = append(features, readFeatures...)
	if a.Development() {
		features = append(features, devFeatures...)
	}
	a.config, _ = json.Marshal(map[string][]string{"supportedFeatures": features})
	return a
}

// Development reports whether every socket, room and event is reported.
func (a *Admin) Development() bool { return a.cfg.Mode == config.AdminDevelopment }

// Attach declares the /admin namespace on the server; eng (nil: none) is
// asked for its polling clients and connections opened.
func (a *Admin) Attach(eng *engineio.Server) {
	a.eng = eng
	a.ns = a.srv.AddNamespace(config.AdminNamespace, a, nil)
}

// Run sends server_stats every StatsInterval until ctx ends.
func (a *Admin) Run(ctx context.Context) {
	a.SendStats()
	t := time.NewTicker(StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.SendStats()
		}
	}
}

// identity is what an admin socket keeps: who logged in, with which
// session, and the new session id to hand over once connected.
type identity struct {
	user, session string
	fresh         bool
}

func (a *Admin) who(s *socketio.Socket) logrus.Fields {
	f := logrus.Fields{"admin_socket": s.ID(), "remote_addr": s.Handshake().Address}
	if id, ok := s.State().(*identity); ok {
		f["admin_user"] = id.user
		if id.session != "" {
			f["admin_session"] = id.session[:8] // enough to follow one in the logs, not to reuse it
		}
	}
	return f
}

// Connect checks the UI's credentials (lib/index.ts's middleware): a known
// session id, or the username and a password matching the bcrypt hash.
func (a *Admin) Connect(s *socketio.Socket) error {
	if !a.cfg.Auth {
		s.SetState(&identity{user: "(auth off)"})
		return nil
	}
	var auth struct {
		Username  string `json:"username"`
		Password  string `json:"password"`
		SessionID string `json:"sessionId"`
	}
	_ = json.Unmarshal(s.Auth(), &auth) // anything else is no credentials
	if auth.SessionID != "" {
		if user, ok := a.sessions.get(auth.SessionID); ok {
			a.Stats.SessionsResumed.Add(1)
			s.SetState(&identity{user: user, session: auth.SessionID})
			return nil
		}
	}
	ok, busy := a.checkPassword(auth.Username, auth.Password)
	if busy {
		a.Stats.LoginsBusy.Add(1)
		a.log.WithFields(logrus.Fields{"remote_addr": s.Handshake().Address}).Warn("admin login refused: too many at once")
		return &socketio.ConnectError{Message: "too many login attempts, retry later"}
	}
	if !ok {
		a.Stats.LoginsFailed.Add(1)
		a.log.WithFields(logrus.Fields{"remote_addr": s.Handshake().Address, "admin_user": auth.Username}).
			Warn("admin login refused: invalid credentials")
		return &socketio.ConnectError{Message: "invalid credentials"}
	}
	a.Stats.LoginsOK.Add(1)
	s.SetState(&identity{user: auth.Username, session: a.sessions.create(auth.Username), fresh: true})
	return nil
}

// Connected sends the session (after a login), the config and, in
// development mode, every socket of the cluster.
func (a *Admin) Connected(s *socketio.Socket) {
	id, _ := s.State().(*identity)
	if id != nil && id.fresh {
		s.Emit("session", [][]byte{jsonString(id.session)}, nil)
	}
	s.Emit("config", [][]byte{a.config}, nil)
	a.log.WithFields(a.who(s)).Info("admin connected")
	if a.Development() {
		go a.sendAllSockets(s) // cluster requests: off the reader's goroutine
	}
}

// Disconnected logs the end of an admin session.
func (a *Admin) Disconnected(s *socketio.Socket, reason string) {
	a.log.WithFields(a.who(s)).WithField("reason", reason).Info("admin disconnected")
}

// Event runs one of the UI's actions on every instance's sockets, as the
// Node package does through the adapter (io.of(nsp).in(filter)...).
func (a *Admin) Event(s *socketio.Socket, e *socketio.Event) {
	act := -1
	for i, name := range Actions {
		if e.Name == name {
			act = i
		}
	}
	if act < 0 {
		return // the Node package ignores what it does not know too
	}
	log := a.log.WithFields(a.who(s)).WithField("action", e.Name)
	if a.cfg.ReadOnly {
		a.Stats.Refused[act].Add(1)
		log.Warn("admin action refused: read-only")
		return
	}
	op, err := parseAction(e.Name, e.Args)
	var ns *socketio.Namespace
	if err == nil {
		if ns = a.srv.Namespace(op.nsp); ns == nil {
			err = errUnknownNamespace
		}
	}
	if err != nil {
		a.Stats.Refused[act].Add(1)
		log.WithError(err).Warn("admin action refused")
		return
	}
	log = log.WithFields(op.fields())
	opts := rooms.Options{}
	if op.filter != "" {
		opts.Rooms = []string{op.filter}
	}
	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
	defer cancel()
	var reach socketio.Reach
	switch e.Name {
	case "emit":
		ns.BroadcastData(opts, socketio.EventData(op.event, op.args), nil)
	case "join":
		reach, err = ns.SocketsJoin(ctx, opts, []string{op.room})
	case "leave":
		reach, err = ns.SocketsLeave(ctx, opts, []string{op.room})
	case "_disconnect":
		reach, err = ns.DisconnectSockets(ctx, opts, op.close)
	}
	if err != nil {
		a.Stats.Refused[act].Add(1)
		log.WithError(err).Warn("admin action failed on the other instances")
		return
	}
	a.Stats.Done[act].Add(1)
	log.WithField("local_only", reach.LocalOnly).Info("admin action")
}

// emitAll sends an event to every admin socket of the cluster.
func (a *Admin) emitAll(event string, args ...any) {
	if a.ns == nil {
		return
	}
	raw := make([][]byte, len(args))
	for i, v := range args {
		b, err := json.Marshal(v)
		if err != nil {
			a.log.WithError(err).WithField("event", event).Debug("admin event not encodable")
			return
		}
		raw[i] = b
	}
	a.ns.BroadcastData(rooms.Options{}, socketio.EventData(event, raw), nil)
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// jsTime is a JSON timestamp as Node's JSON.stringify(new Date()) writes it.
func jsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
