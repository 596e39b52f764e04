// Package cluster holds the local-cluster script (run.sh) and its test: one
// redis-server and three instances sharing rooms through the Redis adapter.
package cluster
