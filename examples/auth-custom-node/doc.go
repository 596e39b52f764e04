// Package nodeplugin holds the Go test of the Node.js auth "apikey" plugin
// beside it (node_test.go): the plugin launched by the real go-plugin host
// with AutoMTLS and checked with sdk/plugintest. There is no Go code to
// import here.
package nodeplugin
