// Command socket-server runs a Socket.IO-compatible server whose behaviour
// is declared in one HCL file. Run it without arguments for its usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/hcl/v2"
	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/server"
	"github.com/socketfleet/socketfleet/sdk"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

const usage = `socket-server: a Socket.IO server whose behaviour is declared in config.hcl

Usage:
  socket-server run      [--config FILE]   start the server (FILE defaults to ./config.hcl)
  socket-server validate [--config FILE] [--against RUNNING_FILE]
                                           check the config, plugin blocks included, and exit; with
                                           --against, also what an instance running RUNNING_FILE
                                           would refuse to reload
  socket-server reload   [--config FILE]   make the instance running FILE read it again (POST
                                           /api/v1/reload with the api token; or send it SIGHUP)
  socket-server version                    print the server's version and the plugin protocol version
  socket-server help                       print this text (also -h, --help)

Environment:
  LOG_LEVEL      overrides server { log_level } (debug, info, warn, error)
  INSTANCE_ID    this instance's id when server { instance_id } is not set (default: a random "instance-xxxxxxxx")
  any NAME read by env("NAME") in the config file; the shipped config.hcl reads
  LISTEN_ADDR, API_TOKEN, JWT_SECRET, REDIS_URL, REDIS_PREFIX, SHARD,
  ENVIRONMENT and ELASTICSEARCH_URL

Exit status: 0 on success, 1 when the config is invalid or the server failed,
2 for a usage error. Docs: README.md and docs/architecture.md.
`

// The GC runs at Go's default target (GOGC=100) while the server is busy
// and at a tighter one while it allocates little (gctune.go): a fixed
// GOGC=50 cost ~8% more CPU per handshake for ~0.6 KB less per idle
// connection, a tight target at rest costs next to nothing.
func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		// Starting a server is never implicit: `run` says so.
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		path, ok := configFlag("run", args, stdout, stderr)
		if !ok {
			return 2
		}
		if path == "" {
			return 0
		}
		return serve(path, stderr)
	case "reload":
		return reloadCommand(args, stdout, stderr)
	case "validate":
		if hasAgainst(args) {
			return validateAgainst(args, stdout, stderr)
		}
		path, ok := configFlag("validate", args, stdout, stderr)
		if !ok {
			return 2
		}
		if path == "" {
			return 0
		}
		cfg, diags := config.Load(path)
		if !diags.HasErrors() && len(cfg.Plugins) > 0 {
			// Plugin blocks are checked against the schemas the plugins
			// declare: launch each one, decode, stop. Nothing serves.
			log := newLogger(cfg, stderr)
			log.SetLevel(logrus.WarnLevel)
			diags = append(diags, server.ValidatePlugins(context.Background(), cfg, log.WithField("service", "socket-server"))...)
		}
		_ = config.WriteDiagnostics(stderr, nil, diags)
		if diags.HasErrors() {
			return 1
		}
		fmt.Fprintf(stdout, "config OK: %d namespaces, %d plugins\n", len(cfg.Namespaces), len(cfg.Plugins))
		return 0
	case "version":
		fmt.Fprintf(stdout, "socket-server %s (plugin protocol %d)\n", version, sdk.ProtocolVersion)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if strings.HasPrefix(cmd, "-") {
			fmt.Fprintf(stderr, "a command comes first (e.g. socket-server run %s)\n\n%s", strings.Join(append([]string{cmd}, args...), " "), usage)
			return 2
		}
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// configFlag parses a command's flags. An empty path with ok means the
// usage was asked for (-h) and printed: the command has nothing to do.
func configFlag(name string, args []string, stdout, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	path := fs.String("config", "config.hcl", "path of the HCL config file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return "", true
		}
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n%s", fs.Args(), usage)
		return "", false
	}
	return *path, true
}

func serve(path string, stderr io.Writer) int {
	file, diags := config.LoadFile(path)
	if diags.HasErrors() {
		_ = config.WriteDiagnostics(stderr, nil, diags)
		return 1
	}
	cfg := file.Config
	log := newLogger(cfg, stderr)
	for _, d := range diags { // warnings only at this point
		log.WithField("config", rangeOf(d)).Warnf("%s: %s", d.Summary, d.Detail)
	}

	// The first SIGTERM/SIGINT starts the drain; a second one exits at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig := <-sigs
		log.WithField("signal", sig.String()).Info("shutdown requested: draining (send the signal again to exit at once)")
		cancel()
		sig = <-sigs
		log.WithField("signal", sig.String()).Warn("second signal: exiting without finishing the drain")
		os.Exit(1)
	}()
	if os.Getenv("GOGC") == "" {
		go tuneGC(ctx)
	}
	hup := reloadSignal()
	defer signal.Stop(hup)
	log.WithFields(logrus.Fields{"version": version, "config": path, "listen": cfg.Server.Listen, "config_hash": file.Hash}).Info("starting")
	if err := server.RunWith(ctx, file, log, version, server.RunOptions{Reload: hupToReload(hup)}); err != nil && !errors.Is(err, context.Canceled) {
		var diags hcl.Diagnostics
		if errors.As(err, &diags) {
			_ = config.WriteDiagnostics(stderr, nil, diags)
		}
		log.WithError(err).Error("server stopped")
		return 1
	}
	log.Info("stopped")
	return 0
}

func rangeOf(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
}

// newLogger builds the process logger from the config; every entry carries
// service and instance_id.
func newLogger(cfg *config.Config, out io.Writer) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(out)
	if lvl, err := logrus.ParseLevel(cfg.Server.LogLevel); err == nil {
		log.SetLevel(lvl)
	}
	if cfg.Server.LogFormat == "text" {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	} else {
		log.SetFormatter(&logrus.JSONFormatter{})
	}
	log.AddHook(fieldsHook{"service": "socket-server", "instance_id": cfg.Server.InstanceID})
	return log
}

// fieldsHook adds fixed fields to every log entry that does not set them.
type fieldsHook logrus.Fields

func (h fieldsHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h fieldsHook) Fire(e *logrus.Entry) error {
	for k, v := range h {
		if _, ok := e.Data[k]; !ok {
			e.Data[k] = v
		}
	}
	return nil
}
