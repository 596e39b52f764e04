package config

import (
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"golang.org/x/crypto/bcrypt"
)

// Admin is the top-level `admin { ... }` block: the Socket.IO Admin UI's
// /admin namespace (and, with UI, its files at /admin/). nil = off.
type Admin struct {
	// Auth is false only when the block says `auth = false`: then anyone
	// who reaches the port may use the namespace.
	Auth         bool
	Username     string
	PasswordHash string // bcrypt, as @socket.io/admin-ui takes it
	ReadOnly     bool
	Mode         string // AdminProduction or AdminDevelopment
	UI           bool   // serve the UI's files at /admin/
	UIDir        string // serve them from this folder instead of the embedded copy (absolute)
	DeclRange    hcl.Range
}

// The admin block's modes, as @socket.io/admin-ui names them.
const (
	AdminProduction  = "production"
	AdminDevelopment = "development"
)

// AdminNamespace is the namespace the Admin UI connects to.
const AdminNamespace = "/admin"

// MinAdminBcryptCost is the lowest bcrypt cost accepted (bcrypt's default).
const MinAdminBcryptCost = bcrypt.DefaultCost

var adminSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "auth"}, {Name: "username"}, {Name: "password_hash"}, {Name: "read_only"},
		{Name: "mode"}, {Name: "ui"}, {Name: "ui_dir"},
	},
}

func (d *decoder) admin(b *hcl.Block) *Admin {
	if b == nil {
		return nil
	}
	a := &Admin{Auth: true, Mode: AdminProduction, UI: true, DeclRange: b.DefRange}
	attrs := d.content(b.Body, adminSchema).Attributes
	d.boolean(attrs["auth"], &a.Auth)
	d.boolean(attrs["read_only"], &a.ReadOnly)
	d.boolean(attrs["ui"], &a.UI)
	if attr := attrs["mode"]; attr != nil && d.str(attr, &a.Mode) {
		d.oneOf(attr, a.Mode, AdminProduction, AdminDevelopment)
	}
	if attr := attrs["ui_dir"]; attr != nil && d.str(attr, &a.UIDir) {
		if a.UIDir != "" && !filepath.IsAbs(a.UIDir) {
			a.UIDir = filepath.Join(configDir(b.DefRange.Filename), a.UIDir) // as plugin commands: the config's folder
		}
		if _, err := os.Stat(filepath.Join(a.UIDir, "index.html")); a.UIDir == "" || err != nil {
			d.attrError(attr, "Invalid ui_dir", "ui_dir must name a folder holding the Admin UI's index.html (relative to the config file's folder); %q has none.", a.UIDir)
		}
	}
	user, hash := attrs["username"], attrs["password_hash"]
	if !a.Auth {
		for _, attr := range []*hcl.Attribute{user, hash} {
			if attr != nil {
				d.attrError(attr, "Credentials with auth = false",
					"%q has no effect when auth is turned off; remove it, or remove auth = false.", attr.Name)
			}
		}
		return a
	}
	if user == nil || hash == nil {
		d.errorf(b.DefRange.Ptr(), nil, "Admin credentials missing",
			`The admin block needs username and password_hash (a bcrypt hash: password_hash = env("ADMIN_PASSWORD_HASH")), or auth = false to let anyone who reaches the port in.`)
		return a
	}
	if d.str(user, &a.Username) && a.Username == "" {
		d.attrError(user, "Invalid username", "username must not be empty.")
	}
	if d.str(hash, &a.PasswordHash) {
		cost, err := bcrypt.Cost([]byte(a.PasswordHash))
		switch {
		case err != nil:
			d.attrError(hash, "Invalid password_hash",
				"password_hash must be a bcrypt hash (not the password): generate one with `htpasswd -bnBC 12 \"\" PASSWORD | tr -d ':\\n'` and pass it with env(\"ADMIN_PASSWORD_HASH\").")
		case cost < MinAdminBcryptCost:
			d.attrError(hash, "Weak password_hash",
				"The bcrypt cost of password_hash is %d; use at least %d.", cost, MinAdminBcryptCost)
		}
	}
	return a
}
