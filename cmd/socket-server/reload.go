package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/socketfleet/socketfleet/core/config"
	"github.com/socketfleet/socketfleet/core/server"
)

// reloadSignal is SIGHUP: reload the config file.
func reloadSignal() chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c
}

// hupToReload turns signals into reload requests; signals that arrive
// during a reload fold into one more.
func hupToReload(sigs <-chan os.Signal) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		for range sigs {
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// reloadCommand is `socket-server reload --config FILE`: it reads FILE for
// the running instance's address and API token, and asks it to reload
// (POST /api/v1/reload). The instance reads its own file again (the one
// it was started with): FILE is only how to reach it.
func reloadCommand(args []string, stdout, stderr io.Writer) int {
	path, ok := configFlag("reload", args, stdout, stderr)
	if !ok {
		return 2
	}
	if path == "" {
		return 0
	}
	cfg, diags := config.Load(path)
	if diags.HasErrors() {
		_ = config.WriteDiagnostics(stderr, nil, diags)
		fmt.Fprintln(stderr, "reload: not sent (the instance would refuse this file too; the running config is untouched)")
		return 1
	}
	if cfg.Server.API == nil {
		fmt.Fprintf(stderr, "reload: %s has no server { api { token = ... } } block, so the instance has no reload endpoint; send it SIGHUP instead (kill -HUP <pid>)\n", path)
		return 1
	}
	host, port, _ := net.SplitHostPort(cfg.Server.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/api/v1/reload"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+cfg.Server.API.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "reload: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			fmt.Fprintf(stderr, "reload refused (%d): %s\n", resp.StatusCode, e.Error)
		} else {
			fmt.Fprintf(stderr, "reload refused (%d): %s\n", resp.StatusCode, body)
		}
		return 1
	}
	var res server.ReloadResult
	_ = json.Unmarshal(body, &res)
	fmt.Fprintf(stdout, "reloaded: config %s (was %s), generation %d, %.1f ms\n", res.Hash, res.PreviousHash, res.Generation, res.DurationMS)
	return 0
}

func hasAgainst(args []string) bool {
	for _, a := range args {
		if a == "--against" || a == "-against" || strings.HasPrefix(a, "--against=") || strings.HasPrefix(a, "-against=") {
			return true
		}
	}
	return false
}

// validateAgainst is `validate --config NEW --against RUNNING`: NEW is
// checked as validate does, then compared with RUNNING for what an
// instance started from RUNNING would refuse to reload.
func validateAgainst(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.hcl", "path of the HCL config file")
	against := fs.String("against", "", "the config file the running instance was started with")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *against == "" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	next, diags := config.LoadFile(*path)
	if !diags.HasErrors() && len(next.Plugins) > 0 {
		log := newLogger(next.Config, stderr)
		log.SetLevel(logrus.WarnLevel)
		diags = append(diags, server.ValidatePlugins(context.Background(), next.Config, log.WithField("service", "socket-server"))...)
	}
	if diags.HasErrors() {
		_ = config.WriteDiagnostics(stderr, nil, diags)
		return 1
	}
	prev, pd := config.LoadFile(*against)
	if pd.HasErrors() {
		_ = config.WriteDiagnostics(stderr, nil, pd)
		fmt.Fprintf(stderr, "validate: cannot read the running config %s\n", *against)
		return 1
	}
	config.Inherit(prev, next)
	refused := config.Refusals(prev, next)
	_ = config.WriteDiagnostics(stderr, nil, append(diags, refused...))
	if refused.HasErrors() {
		fmt.Fprintf(stderr, "config valid, but an instance running %s would refuse to reload it (%d settings above); restart it instead\n", *against, len(refused))
		return 1
	}
	fmt.Fprintf(stdout, "config OK: %d namespaces, %d plugins; an instance running %s can reload it\n", len(next.Namespaces), len(next.Plugins), *against)
	return 0
}
