package admin

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"

	"github.com/socketfleet/socketfleet/core/protocol/siowire"
)

// ui holds the UI's compiled files in ui/www/dist when `make ui` ran
// before the build, and the page saying how to get them in any case.
//
//go:embed ui/www
var ui embed.FS

// UIPrefix is where the UI's files are served.
const UIPrefix = "/admin/"

// The UI's index.html loads its fonts from outside sites. The icon font
// (without which its icon buttons are blank) is served from here instead,
// from @mdi/font (make ui); the text font falls back to the browser's. So
// a browser with no way out, or no wish to tell a CDN about the admin
// page, loads nothing but this server's files.
const (
	robotoLink = `<link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto:100,300,400,500,700,900">`
	mdiLink    = `<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css">`
	mdiLocal   = "mdi/css/materialdesignicons.min.css"
)

// UIHandler serves the UI under UIPrefix: from dir when set, else the
// embedded copy (or the page saying it is missing). Its index.html is
// given a script that points the UI at this server (its origin, the
// Socket.IO path, the /admin namespace), which the UI reads from local
// storage.
func UIHandler(dir, socketPath string) (http.Handler, error) {
	var files fs.FS
	if dir != "" {
		files = os.DirFS(dir)
		if _, err := fs.Stat(files, "index.html"); err != nil {
			return nil, fmt.Errorf("admin ui_dir %s: no index.html: %w", dir, err)
		}
	} else if sub, err := fs.Sub(ui, "ui/www/dist"); err == nil {
		if _, err := fs.Stat(sub, "index.html"); err == nil {
			files = sub
		}
	}
	if files == nil {
		page, _ := ui.ReadFile("ui/www/missing.html")
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write(page)
		}), nil
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, fmt.Errorf("admin ui: %w", err)
	}
	_, err = fs.Stat(files, mdiLocal)
	index = prefill(index, strings.TrimSuffix(socketPath, "/"), err == nil)
	static := http.StripPrefix(UIPrefix, http.FileServer(http.FS(files)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		if p := path.Clean(r.URL.Path); p == strings.TrimSuffix(UIPrefix, "/") || p+"/" == UIPrefix || p == UIPrefix+"index.html" {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			_, _ = w.Write(index)
			return
		}
		static.ServeHTTP(w, r)
	}), nil
}

// prefill points the UI at the server it was loaded from.
func prefill(index []byte, socketPath string, localIcons bool) []byte {
	index = bytes.Replace(index, []byte(robotoLink), nil, 1)
	icons := []byte(nil)
	if localIcons {
		icons = []byte(`<link rel="stylesheet" href="` + mdiLocal + `">`)
	}
	index = bytes.Replace(index, []byte(mdiLink), icons, 1)
	script := []byte(`<script>try{var s=window.localStorage;s.setItem("server_url",location.origin);s.setItem("namespace","/admin");s.setItem("path",` +
		string(siowire.AppendString(nil, socketPath)) + `)}catch(e){}</script>`)
	i := bytes.Index(index, []byte("<script"))
	if i < 0 {
		i = bytes.Index(index, []byte("</head>"))
	}
	if i < 0 {
		return append(index, script...)
	}
	return append(append(append([]byte{}, index[:i]...), script...), index[i:]...)
}
