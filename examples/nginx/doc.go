// Package nginx holds the nginx examples and their end-to-end test: three
// instances behind a real nginx, sharing rooms through a real Redis.
package nginx
