package sdk

import (
	"context"
	"path/filepath"
)

type configDirKey struct{}

// WithConfigDir returns ctx carrying dir, the folder of the config file a
// plugin's block came from. The host sets it on the context of Configure
// (it crosses the boundary in the Configure request); a plugin's own tests
// set it to try relative paths.
func WithConfigDir(ctx context.Context, dir string) context.Context {
	return context.WithValue(ctx, configDirKey{}, dir)
}

// ConfigDir is the folder of the config file the plugin's block came from,
// as Configure's ctx carries it; "" when unknown (a host that predates it).
func ConfigDir(ctx context.Context) string {
	dir, _ := ctx.Value(configDirKey{}).(string)
	return dir
}

// ResolvePath resolves a path from the plugin's block the way the operator
// reads it: relative to the config file's folder, not to the working
// directory of either process. Absolute paths, "" and paths under an
// unknown folder come back unchanged. Call it in Configure with its ctx.
func ResolvePath(ctx context.Context, p string) string {
	dir := ConfigDir(ctx)
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}
