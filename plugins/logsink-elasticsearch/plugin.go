package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/socketfleet/socketfleet/sdk"
)

// Defaults of the optional attributes.
const (
	defaultIndex         = "socket-server-%Y.%m.%d"
	defaultBuffer        = 50000
	defaultBulkActions   = 1000
	defaultFlushInterval = time.Second
	defaultRetryMax      = 30 * time.Second
)

type plugin struct {
	logOut io.Writer // stderr when nil (tests capture it)

	mu   sync.Mutex
	sink *sink
}

var _ sdk.LogSink = (*plugin)(nil)

func (p *plugin) Info() sdk.Info {
	return sdk.Info{Kind: sdk.KindLogSink, Name: "elasticsearch", Version: "0.1.0", ProtocolVersion: sdk.ProtocolVersion}
}

func (p *plugin) ConfigSchema() sdk.Schema {
	return sdk.Schema{Attributes: []sdk.Attribute{
		{Name: "url", Type: sdk.TypeString, Required: true, Description: `Elasticsearch URL; several nodes separated by commas (env() yields a single string)`},
		{Name: "index", Type: sdk.TypeString, Description: `index name pattern; %Y %m %d are the entry's UTC date, %% a literal % (default "socket-server-%Y.%m.%d")`},
		{Name: "username", Type: sdk.TypeString, Description: "basic auth user; usually env(...)"},
		{Name: "password", Type: sdk.TypeString, Description: "basic auth password; usually env(...)"},
		{Name: "api_key", Type: sdk.TypeString, Description: `API key (the base64 "id:key"), sent as "Authorization: ApiKey ..."; instead of username/password`},
		{Name: "sniff", Type: sdk.TypeBool, Description: "discover the cluster's other nodes (default false)"},
		{Name: "healthcheck", Type: sdk.TypeBool, Description: "ping the nodes at start-up and periodically (default false; with true, start-up fails while Elasticsearch is down)"},
		{Name: "buffer", Type: sdk.TypeNumber, Description: "most entries held in the plugin, waiting or being sent; beyond it Write fails and the core keeps, then drops and counts (default 50000)"},
		{Name: "bulk_actions", Type: sdk.TypeNumber, Description: "most entries per bulk request (default 1000)"},
		{Name: "flush_interval", Type: sdk.TypeDuration, Description: `longest an entry waits for its bulk request to fill (default "1s")`},
		{Name: "retry_max", Type: sdk.TypeDuration, Description: `longest wait between retries of a 429, a 5xx or an outage; the backoff doubles up to it (default "30s")`},
	}}
}

type config struct {
	URL           urlList   `json:"url"`
	Index         *string   `json:"index"`
	Username      string    `json:"username"`
	Password      string    `json:"password"`
	APIKey        string    `json:"api_key"`
	Sniff         flexBool  `json:"sniff"`
	Healthcheck   flexBool  `json:"healthcheck"`
	Buffer        *flexNum  `json:"buffer"`
	BulkActions   *flexNum  `json:"bulk_actions"`
	FlushInterval *duration `json:"flush_interval"`
	RetryMax      *duration `json:"retry_max"`
}

// urlList is a string (commas or spaces separate nodes) or a list of them.
type urlList []string

func (u *urlList) UnmarshalJSON(b []byte) error {
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errors.New("url must be a string or a list of strings")
		}
		list = []string{s}
	}
	*u = nil
	for _, s := range list {
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
			*u = append(*u, f)
		}
	}
	return nil
}

// flexNum accepts a JSON number or a numeric string (env() yields strings).
type flexNum float64

func (n *flexNum) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*n = flexNum(f)
	return nil
}

// flexBool accepts a JSON bool or "true"/"false".
type flexBool bool

func (v *flexBool) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	x, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("not a bool: %s", b)
	}
	*v = flexBool(x)
	return nil
}

// duration is a Go duration string, as the core sends durations.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("not a duration string: %s", b)
	}
	x, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(x)
	return nil
}

func wholePositive(n *flexNum, name string, def int) (int, error) {
	if n == nil {
		return def, nil
	}
	v := int(*n)
	if float64(v) != float64(*n) || v < 1 {
		return 0, fmt.Errorf(`log_sink "elasticsearch": %s must be a whole number ≥ 1`, name)
	}
	return v, nil
}

func (p *plugin) Configure(_ context.Context, raw sdk.Config) error {
	var c config
	if err := raw.Decode(&c); err != nil {
		return fmt.Errorf(`log_sink "elasticsearch": %w`, err)
	}
	o := options{index: defaultIndex, flushInterval: defaultFlushInterval, retryMax: defaultRetryMax}
	if len(c.URL) == 0 {
		return errors.New(`log_sink "elasticsearch": url is required`)
	}
	if c.Index != nil {
		if *c.Index == "" {
			return errors.New(`log_sink "elasticsearch": index cannot be empty`)
		}
		o.index = *c.Index
	}
	var err error
	if o.buffer, err = wholePositive(c.Buffer, "buffer", defaultBuffer); err != nil {
		return err
	}
	if o.bulkActions, err = wholePositive(c.BulkActions, "bulk_actions", defaultBulkActions); err != nil {
		return err
	}
	if c.FlushInterval != nil {
		if o.flushInterval = time.Duration(*c.FlushInterval); o.flushInterval <= 0 {
			return errors.New(`log_sink "elasticsearch": flush_interval must be positive`)
		}
	}
	if c.RetryMax != nil {
		if o.retryMax = time.Duration(*c.RetryMax); o.retryMax <= 0 {
			return errors.New(`log_sink "elasticsearch": retry_max must be positive`)
		}
	}
	if c.APIKey != "" && (c.Username != "" || c.Password != "") {
		return errors.New(`log_sink "elasticsearch": give api_key or username/password, not both`)
	}
	if c.Password != "" && c.Username == "" {
		return errors.New(`log_sink "elasticsearch": password without username`)
	}
	var logOut io.Writer = os.Stderr
	if p.logOut != nil {
		logOut = p.logOut
	}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(c.URL...),
		elastic.SetSniff(bool(c.Sniff)),
		elastic.SetHealthcheck(bool(c.Healthcheck)),
		elastic.SetErrorLog(log.New(logOut, "elastic: ", 0)),
	}
	if c.Username != "" {
		opts = append(opts, elastic.SetBasicAuth(c.Username, c.Password))
	}
	if c.APIKey != "" {
		opts = append(opts, elastic.SetHeaders(http.Header{"Authorization": {"ApiKey " + c.APIKey}}))
	}
	client, err := elastic.NewClient(opts...)
	if err != nil {
		return fmt.Errorf(`log_sink "elasticsearch": %w`, err)
	}
	s := newSink(client, o, log.New(logOut, "", 0))
	p.mu.Lock()
	old := p.sink
	p.sink = s
	p.mu.Unlock()
	if old != nil {
		old.stop()
	}
	return nil
}

func (p *plugin) current() (*sink, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sink == nil {
		return nil, errors.New("not configured")
	}
	return p.sink, nil
}

func (p *plugin) Write(_ context.Context, batch []sdk.LogEntry) error {
	s, err := p.current()
	if err != nil {
		return err
	}
	return s.write(batch)
}

func (p *plugin) Flush(ctx context.Context) error {
	s, err := p.current()
	if err != nil {
		return err
	}
	return s.flush(ctx)
}
